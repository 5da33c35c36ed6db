// The devnet's paid requests: both payers at once, each request routed to the best node announcing the adapter
// (as the node's peer table ranks them: tier, queue, price) or sent to the node the plan names. Returns what each
// request cost, after every node's ledger has recorded its requests.
import { setTimeout as sleep } from "node:timers/promises";
import { isAddressEqual, type Hex } from "viem";
import type { DevnetNode } from "./nodes.ts";
import type { DevnetPayer, PaidTarget } from "./payer.ts";
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

export async function runTraffic(
  plan: RequestPlan[],
  payers: Map<string, DevnetPayer>,
  nodes: DevnetNode[],
  adapters: Map<string, ListedAdapter>,
): Promise<ServedRequest[]> {
  const byPayer = new Map<string, RequestPlan[]>();
  for (const r of plan) byPayer.set(r.payer, [...(byPayer.get(r.payer) ?? []), r]);
  const served = await Promise.all(
    [...byPayer].map(async ([payerName, requests]) => {
      const payer = payers.get(payerName);
      if (!payer) throw new Error(`no payer named ${payerName}`);
      const out: ServedRequest[] = [];
      for (const r of requests) out.push(await serve(r, payer, nodes, adapters));
      return out;
    }),
  );
  const all = served.flat();
  await ledgersRecorded(nodes, all);
  return all;
}

async function serve(
  r: RequestPlan,
  payer: DevnetPayer,
  nodes: DevnetNode[],
  adapters: Map<string, ListedAdapter>,
): Promise<ServedRequest> {
  const adapter = adapters.get(r.adapter);
  if (!adapter) throw new Error(`no listed adapter named ${r.adapter}`);
  const node = r.node ? nodes.find((n) => n.plan.name === r.node) : route(nodes[0], adapter.contentHash, nodes);
  if (!node) throw new Error(`no node to serve ${r.adapter}${r.node ? ` named ${r.node}` : ""}`);
  const target: PaidTarget = { url: node.url, operator: node.operator.address, pricePerToken: node.plan.pricePerToken };
  const answer = await payer.complete(target, {
    contentHash: adapter.contentHash,
    listingId: adapter.listingId,
    prompt: r.prompt,
    maxTokens: r.maxTokens,
  });
  return {
    payer: r.payer,
    adapter: r.adapter,
    node: node.plan.name,
    routed: r.node === undefined,
    promptTokens: answer.promptTokens,
    completionTokens: answer.completionTokens,
    cost: answer.cost,
    text: answer.text,
  };
}

/** The best node announcing the adapter, as `via`'s peer table ranks them. */
function route(via: DevnetNode, contentHash: Hex, nodes: DevnetNode[]): DevnetNode | undefined {
  for (const c of via.service.paid?.peers?.candidates(contentHash) ?? []) {
    const node = nodes.find((n) => isAddressEqual(n.operator.address, c.announcement.operator));
    if (node) return node;
  }
  return undefined;
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
