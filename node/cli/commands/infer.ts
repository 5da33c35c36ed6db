// `openlora infer --model <adapter id|listing id|alias> --prompt <text>`: one paid request through the client SDK:
// routed to the best node for the adapter, paid by a voucher from the keystore's key, failed over before the first
// token, the node's receipt verified. Prints the text (streamed with --stream) and, with --json, one object with
// the answer, where it ran and the receipt.
import { formatUnits } from "viem";
import type { PaidCompletion, PayingClient, PaymentInfo } from "../../client/index.ts";
import { numberOption, parseCommand, required, seedOption, stringOption, type CommandSpec } from "../args.ts";
import { discoveryHelp, discoveryOptions, limitHelp, limitOptions, openClient } from "./client-options.ts";
import { chainHelp, chainOptions, tokens, type ChainAccess } from "./stake.ts";

const spec: CommandSpec = {
  summary: "Send a paid request to the network: routed by adapter, paid by voucher, the node's receipt verified.",
  usage:
    "openlora infer --model <adapter id|listing id|alias> --prompt <text> [--stream] [--chat] " +
    "(--bootstrap <multiaddr> | --peers-from <url>) [options]",
  options: {
    model: { type: "string" },
    prompt: { type: "string" },
    stream: { type: "boolean" },
    chat: { type: "boolean" },
    "max-tokens": { type: "string" },
    temperature: { type: "string" },
    seed: { type: "string" },
    ...discoveryOptions,
    ...limitOptions,
    ...chainOptions,
  },
  help: {
    model: "the adapter: its content hash (openlora adapter inspect), a listing id, or an alias a node knows",
    prompt: "the prompt text",
    stream: "print the tokens as they come",
    chat: "send it as a chat message (/v1/chat/completions) instead of a completion",
    "max-tokens": "most tokens to generate (default 64): the voucher covers price x (prompt + max_tokens)",
    temperature: "sampling temperature (default the node's; 0 is greedy)",
    seed: "sampling seed",
    ...discoveryHelp,
    ...limitHelp,
    ...chainHelp,
    "data-dir": "your data folder (default ~/.openlora): keystore.json, and client/ with your channels' state",
    json: "print one JSON object: text, node, listing, cost and the verified receipt (amounts in OPEN and wei)",
  },
};

export async function inferCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { values } = args;
  const model = required(values, "model");
  const prompt = required(values, "prompt");
  const maxTokens = numberOption(values, "max-tokens", 64, { integer: true, min: 1 });
  const temperature = stringOption(values, "temperature");
  const body = {
    model,
    max_tokens: maxTokens,
    ...(temperature !== undefined && { temperature: numberOption(values, "temperature", 1, { min: 0 }) }),
    ...(stringOption(values, "seed") !== undefined && { seed: seedOption(values, 0) }),
  };
  const json = values.json === true;
  const client = await openClient(values, access);
  try {
    // Gossip needs a moment after start before the first announcements arrive.
    await client.waitForRoute(model, 15_000);
    const { text, payment } =
      values.stream === true
        ? await streamed(client, body, prompt, values.chat === true, !json)
        : await whole(client, body, prompt, values.chat === true);
    if (json) console.log(JSON.stringify(resultJson(text, payment)));
    else {
      if (values.stream !== true) process.stdout.write(text);
      process.stdout.write("\n");
      process.stderr.write(
        `[openlora] ${payment.node.api} (${payment.node.operator}) charged ${tokens(payment.cost)} for ${
          payment.receipt ? payment.receipt.promptTokens + payment.receipt.completionTokens : 0n
        } tokens; receipt verified\n`,
      );
    }
  } finally {
    await client.stop();
  }
}

type Body = Record<string, unknown> & { model: string };

async function whole(client: PayingClient, body: Body, prompt: string, chat: boolean) {
  const answer: PaidCompletion = chat
    ? await client.createChatCompletion({ ...body, messages: [{ role: "user", content: prompt }] })
    : await client.createCompletion({ ...body, prompt });
  const choice = (answer.choices as { text?: string; message?: { content: string } }[])[0];
  return { text: choice.text ?? choice.message?.content ?? "", payment: answer.openlora };
}

async function streamed(client: PayingClient, body: Body, prompt: string, chat: boolean, print: boolean) {
  const stream = chat
    ? await client.createChatCompletion({ ...body, messages: [{ role: "user", content: prompt }], stream: true })
    : await client.createCompletion({ ...body, prompt, stream: true });
  let text = "";
  for await (const chunk of stream) {
    const choice = (chunk.choices as { text?: string; delta?: { content?: string } }[] | undefined)?.[0];
    const piece = choice?.text ?? choice?.delta?.content ?? "";
    text += piece;
    if (print) process.stdout.write(piece);
  }
  return { text, payment: await stream.payment };
}

function resultJson(text: string, p: PaymentInfo): Record<string, unknown> {
  const r = p.receipt;
  return {
    text,
    model: p.model,
    listingId: p.listingId,
    contentHash: p.contentHash,
    node: p.node,
    pricePerToken: p.pricePerToken.toString(),
    cost: formatUnits(p.cost, 18),
    costWei: p.cost.toString(),
    voucherAmount: p.voucherAmount?.toString() ?? null,
    receipt: r && {
      requestId: r.requestId,
      payer: r.payer,
      node: r.node,
      listingId: r.listingId,
      adapter: r.adapter,
      promptTokens: Number(r.promptTokens),
      completionTokens: Number(r.completionTokens),
      cost: r.cost.toString(),
      cumulativeConsumed: r.cumulativeConsumed.toString(),
      voucherAmount: r.voucherAmount.toString(),
      verified: true,
    },
    failovers: p.failovers,
  };
}
