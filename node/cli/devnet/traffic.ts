// The devnet's paid requests: both payers at once through the client SDK (node/client), each request routed to
// the best node announcing the adapter (tier, queue, price), paid with a voucher and checked by its receipt; the
// requests the plan sends to a named node (one that does not hold the adapter and must fetch it from a peer) go
// through the devnet's own small payer, since the SDK routes only to nodes that announce the adapter. Returns what
// each request cost, after every node's ledger has recorded its requests.
import { setTimeout as sleep } from "node:timers/promises";
import { isAddressEqual, type Hex } from "viem";
import type { PayingClient } from "../../client/index.ts";
import type { DevnetNode } from "./nodes.ts";
import type { DevnetPayer } from "./payer.ts";
import type { RequestPlan } from "./scenario.ts";

export interface ListedAdapter {
  name: string;
  contentHash: Hex;
  listingId: Hex;
}

export interface ServedRequest {
  payer: string;
  adapter: string;
  node: string;
  routed: boolean;
  promptTokens: number;
  completionTokens: number;
  cost: bigint;
  text: string;
}

export interface Payers {
  /** The SDK's client of each payer: routed requests. */
  clients: Map<string, PayingClient>;
  /** The devnet's payer of each payer: requests sent to a named node. */
  pinned: Map<string, DevnetPayer>;
}

/** Both payers' routed requests at once, then the requests to named nodes (after, so no channel has two payers). */
export async function runTraffic(
  plan: RequestPlan[],
  payers: Payers,
  nodes: DevnetNode[],
  adapters: Map<string, ListedAdapter>,
): Promise<ServedRequest[]> {
  const adapterOf = (name: string): ListedAdapter => {
    const adapter = adapters.get(name);
    if (!adapter) throw new Error(`no listed adapter named ${name}`);
    return adapter;
  };
  const routed = plan.filter((r) => r.node === undefined);
  const byPayer = new Map<string, RequestPlan[]>();
  for (const r of routed) byPayer.set(r.payer, [...(byPayer.get(r.payer) ?? []), r]);
  const served = (
    await Promise.all(
      [...byPayer].map(async ([payer, requests]) => {
        const client = payers.clients.get(payer);
        if (!client) throw new Error(`no client for payer ${payer}`);
        const out: ServedRequest[] = [];
        for (const r of requests) out.push(await routedRequest(r, client, nodes, adapterOf(r.adapter)));
        return out;
      }),
    )
  ).flat();
  for (const r of plan.filter((p) => p.node !== undefined)) {
    const payer = payers.pinned.get(r.payer);
    const node = nodes.find((n) => n.plan.name === r.node);
    if (!payer || !node) throw new Error(`no payer ${r.payer} or node ${r.node}`);
    served.push(await pinnedRequest(r, payer, node, adapterOf(r.adapter)));
  }
  await ledgersRecorded(nodes, served);
  return served;
}

async function routedRequest(
  r: RequestPlan,
  client: PayingClient,
  nodes: DevnetNode[],
  adapter: ListedAdapter,
): Promise<ServedRequest> {
  await client.waitForRoute(adapter.listingId);
  const answer = await client.createCompletion({
    model: adapter.listingId,
    prompt: r.prompt,
    max_tokens: r.maxTokens,
    temperature: 0,
  });
  const paid = answer.openlora;
  const node = nodes.find((n) => isAddressEqual(n.operator.address, paid.node.operator));
  if (!node || !paid.receipt)
    throw new Error(`request for ${r.adapter} was served by ${paid.node.api} without a receipt`);
  return {
    payer: r.payer,
    adapter: r.adapter,
    node: node.plan.name,
    routed: true,
    promptTokens: Number(paid.receipt.promptTokens),
    completionTokens: Number(paid.receipt.completionTokens),
    cost: paid.cost,
    text: String((answer.choices as { text?: string }[])[0]?.text ?? ""),
  };
}

async function pinnedRequest(
  r: RequestPlan,
  payer: DevnetPayer,
  node: DevnetNode,
  adapter: ListedAdapter,
): Promise<ServedRequest> {
  const answer = await payer.complete(
    { url: node.url, operator: node.operator.address, pricePerToken: node.plan.pricePerToken },
    { contentHash: adapter.contentHash, listingId: adapter.listingId, prompt: r.prompt, maxTokens: r.maxTokens },
  );
  const { text, promptTokens, completionTokens, cost } = answer;
  return {
    payer: r.payer,
    adapter: r.adapter,
    node: node.plan.name,
    routed: false,
    text,
    promptTokens,
    completionTokens,
    cost,
  };
}

/** A request's ledger record is written just after its answer: wait until every node holds all of its own. */
async function ledgersRecorded(nodes: DevnetNode[], served: ServedRequest[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (const node of nodes) {
    const expected = served.filter((s) => s.node === node.plan.name).length;
    while ((await node.service.ledger.totals()).all.requests < expected) {
      if (Date.now() > deadline)
        throw new Error(`${node.plan.name}'s ledger has not recorded its ${expected} requests`);
      await sleep(20);
    }
  }
}
