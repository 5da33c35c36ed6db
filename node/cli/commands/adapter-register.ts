// `openlora adapter register <dir> --contributors addr:bps,...`: computes the adapter's id (the content hash of its
// canonical encoding), lists it in AdapterRegistry from the keystore's key with its attribution (weights in basis
// points summing to 10000), and with --node puts it in that node's store (POST /v1/adapters, admin token), so the
// node serves and announces it.
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { getAddress, isAddress } from "viem";
import type { Contribution } from "../../chain/index.ts";
import { adapterFacts, AttributionError, checkAttribution, registerListing } from "../../client/index.ts";
import { modelIdentity } from "../../engine/index.ts";
import { parseCommand, required, stringOption, UsageError, type CommandSpec, type ParsedCommand } from "../args.ts";
import { ADMIN_TOKEN_ENV } from "./node.ts";
import { chainHelp, chainOptions, connect, type ChainAccess } from "./stake.ts";

const spec: CommandSpec = {
  summary: "List a PEFT adapter in AdapterRegistry with its contributors, and optionally put it in a node's store.",
  usage:
    "openlora adapter register <dir> --contributors <address>:<bps>,... [--uri <uri>] " +
    "[--node <API URL> [--alias <name>]] [options]",
  options: {
    contributors: { type: "string" },
    model: { type: "string" },
    uri: { type: "string" },
    node: { type: "string" },
    alias: { type: "string" },
    "admin-token-file": { type: "string" },
    ...chainOptions,
  },
  help: {
    contributors: "the attribution: address:basis-points pairs, comma-separated, summing to 10000 (at most 64)",
    model:
      "the model the nodes serve it on (folder or file; only its config is read): its architecture family and q/k " +
      "order are part of the content hash (default: a plain LLaMA in llama2.c's basis, as the demo adapters)",
    uri: "where the weights can be fetched (default none: peers send them by content hash)",
    node: "also import the folder into this node's store (the folder must be readable by the node)",
    alias: "the name the node serves it under (default the folder's name)",
    "admin-token-file": `file holding the node's admin token (else $${ADMIN_TOKEN_ENV})`,
    ...chainHelp,
    json: "print one JSON object: content hash, listing id, transaction, attribution, and the node's entry",
  },
  positionals: 1,
};

export async function adapterRegisterCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { values } = args;
  const dir = resolve(args.positionals[0]);
  const contributions = parseContributors(required(values, "contributors"));
  const node = stringOption(values, "node");
  if (node !== undefined && !URL.canParse(node))
    throw new UsageError(`--node must be the node's API URL, got "${node}"`);
  const adminToken = node === undefined ? null : await readAdminToken(values);
  const modelPath = stringOption(values, "model");
  const facts = await adapterFacts(dir, modelPath === undefined ? undefined : await modelIdentity(modelPath));
  const s = await connect(values, access);
  const listing = await registerListing(
    s.clients,
    s.deployment,
    facts,
    contributions,
    stringOption(values, "uri") ?? "",
  );
  const stored = node === undefined ? null : await putInStore(node, adminToken!, dir, stringOption(values, "alias"));
  if (values.json === true) {
    console.log(
      JSON.stringify({
        contentHash: facts.contentHash,
        listingId: listing.listingId,
        registrant: listing.registrant,
        baseModel: facts.baseModel,
        rank: facts.rank,
        size: facts.size,
        contributors: contributions,
        transaction: {
          ...listing.transaction,
          blockNumber: Number(listing.transaction.blockNumber),
          gasUsed: listing.transaction.gasUsed.toString(),
        },
        node: stored,
      }),
    );
    return;
  }
  const t = listing.transaction;
  console.log(
    [
      `register       ${t.hash} block ${t.blockNumber}, gas ${t.gasUsed}, ${t.status}`,
      `adapter        ${facts.contentHash} (rank ${facts.rank}, ${facts.size} bytes, ` +
        `base ${facts.baseModel || "unnamed"})`,
      `listing        ${listing.listingId}`,
      `registrant     ${listing.registrant}`,
      ...contributions.map((c) => `contributor    ${c.contributor} ${c.weightBps} bps`),
      stored
        ? `node           ${node} holds it as ${(stored as { id?: string }).id}`
        : "node           (not put in a node's store: --node)",
    ].join("\n"),
  );
}

/** "0xabc..:7000,0xdef..:3000" -> the attribution, checked as the registry will check it. */
export function parseContributors(text: string): Contribution[] {
  const entries = text
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  const parsed = entries.map((entry): Contribution => {
    const match = /^(.*):(\d+)$/.exec(entry);
    if (!match) throw new UsageError(`--contributors entry "${entry}" must be <address>:<basis points>`);
    if (!isAddress(match[1], { strict: false })) {
      throw new UsageError(`--contributors entry "${entry}": "${match[1]}" is not an address (0x and 40 hex digits)`);
    }
    return { contributor: getAddress(match[1]), weightBps: Number(match[2]) };
  });
  try {
    return checkAttribution(parsed);
  } catch (error) {
    if (error instanceof AttributionError) throw new UsageError(`--contributors: ${error.message}`);
    throw error;
  }
}

async function readAdminToken(values: ParsedCommand["values"]): Promise<string> {
  const file = stringOption(values, "admin-token-file");
  const token = file !== undefined ? (await readFile(file, "utf8")).trim() : process.env[ADMIN_TOKEN_ENV];
  if (!token)
    throw new UsageError(`--node needs the node's admin token: --admin-token-file <file> or $${ADMIN_TOKEN_ENV}`);
  return token;
}

async function putInStore(node: string, token: string, dir: string, alias: string | undefined): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(new URL("/v1/adapters", node), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ path: dir, ...(alias !== undefined && { alias }) }),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (error) {
    throw new Error(`registered on chain, but cannot reach the node at ${node}: ${(error as Error).message}`);
  }
  const body = (await response.json().catch(() => null)) as { error?: { message?: string } } | null;
  if (!response.ok) {
    throw new Error(
      `registered on chain, but the node refused it: HTTP ${response.status} ${body?.error?.message ?? ""}`,
    );
  }
  return body;
}
