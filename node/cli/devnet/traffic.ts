// The devnet's paid requests, all through the client SDK (node/client): both payers at once, each request paid
// with a voucher and checked by its receipt. A request of the plan without a node is routed to the best node
// announcing the adapter (tier, queue, price); one that names a node goes only to that node, which may not hold
// the adapter and then fetches it from a peer by content hash. Returns what each request cost, after every node's
// ledger has recorded its requests.
import { setTimeout as sleep } from "node:timers/promises";
import { isAddressEqual, type Hex } from "viem";
import type { PayingClient } from "../../client/index.ts";
import type { DevnetNode } from "./nodes.ts";
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
  /** false: sent to the node the plan named. */
  routed: boolean;
  promptTokens: number;
  completionTokens: number;
  cost: bigint;
  text: string;
}

/**
 * Each payer's requests in the plan's order, the payers at once. The plan lists the routed requests first, so the
 * adapters a node must fetch are asked of it after routing has served every adapter where it is hot.
 */
export async function runTraffic(
  plan: RequestPlan[],
  clients: Map<string, PayingClient>,
  nodes: DevnetNode[],
  adapters: Map<string, ListedAdapter>,
): Promise<ServedRequest[]> {
  const byPayer = new Map<string, RequestPlan[]>();
  for (const r of plan) byPayer.set(r.payer, [...(byPayer.get(r.payer) ?? []), r]);
  const served = (
    await Promise.all(
      [...byPayer].map(async ([payer, requests]) => {
        const client = clients.get(payer);
        if (!client) throw new Error(`no client for payer ${payer}`);
        const out: ServedRequest[] = [];
        for (const r of requests) out.push(await paidRequest(r, client, nodes, adapters));
        return out;
      }),
    )
  ).flat();
  await ledgersRecorded(nodes, served);
  return served;
}

async function paidRequest(
  r: RequestPlan,
  client: PayingClient,
  nodes: DevnetNode[],
  adapters: Map<string, ListedAdapter>,
): Promise<ServedRequest> {
  const adapter = adapters.get(r.adapter);
  if (!adapter) throw new Error(`no listed adapter named ${r.adapter}`);
  const named = r.node === undefined ? undefined : nodes.find((n) => n.plan.name === r.node);
  if (r.node !== undefined && !named) throw new Error(`the plan names node ${r.node}, which the devnet lacks`);
  await client.waitForRoute(adapter.listingId);
  const answer = await client.createCompletion(
    { model: adapter.listingId, prompt: r.prompt, max_tokens: r.maxTokens, temperature: 0 },
    { node: named?.operator.address },
  );
  const paid = answer.openlora;
  const node = nodes.find((n) => isAddressEqual(n.operator.address, paid.node.operator));
  if (!node || !paid.receipt)
    throw new Error(`request for ${r.adapter} was served by ${paid.node.api} without a receipt`);
  return {
    payer: r.payer,
    adapter: r.adapter,
    node: node.plan.name,
    routed: named === undefined,
    promptTokens: Number(paid.receipt.promptTokens),
    completionTokens: Number(paid.receipt.completionTokens),
    cost: paid.cost,
    text: String((answer.choices as { text?: string }[])[0]?.text ?? ""),
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
