// Paid mode's fixtures: a Hardhat in-process chain with the contracts, a staked operator (a local key, as its
// keystore gives it), the demo adapters listed with contributors, a node in paid mode on that chain, and payers
// who deposit for the node and send requests with signed vouchers.
import { createWalletClient, custom, parseEther, type Address, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import type { NodeServiceOptions } from "../../node/api/index.ts";
import { encodeVoucherHeader } from "../../node/api/payment/voucher-header.ts";
import {
  getContracts,
  listingIdOf,
  signerAddress,
  signVoucher,
  type EscrowDomain,
  type VoucherSigner,
} from "../../node/chain/index.ts";
import { createChain, peerIdOf, type Chain } from "../contracts/fixture.ts";
import { join } from "node:path";
import { loadPeftAdapter } from "../../node/engine/index.ts";
import { DEMO_ADAPTERS, stories } from "../helpers/stories.ts";
import { ADAPTERS_DIR, postJson, startTestNode, type RawResponse, type TestNode } from "./helpers.ts";

/** Wei per token. */
export const PRICE = 10n ** 12n;
/** Tokens of "Once upon a time" with BOS. */
export const PROMPT_TOKENS = 5;
export const PROMPT = "Once upon a time";

export type Wallet = Chain["payerA"];

export interface PaidSetup {
  chain: Chain;
  operator: PrivateKeyAccount;
  /** Listing ids of the demo adapters, by alias. */
  listings: Record<"dragon" | "ocean" | "robot", Hex>;
  /** Contributors of every listing and their weights (bps). */
  contributors: { address: Address; weightBps: number }[];
}

/** A chain with a staked operator and the demo adapters listed (content hashes from a node's catalog). */
export async function paidChain(
  adapters: Record<"dragon" | "ocean" | "robot", { id: Hex; bytes: number }>,
): Promise<PaidSetup> {
  const chain = await createChain();
  const operator = privateKeyToAccount(generatePrivateKey());
  await chain.testClient.setBalance({ address: operator.address, value: parseEther("10") });
  const wallet = operatorWallet(chain, operator);
  const stake = parseEther("100");
  await chain.fund(operator.address, stake);
  const registry = chain.deployment.contracts.NodeRegistry;
  const as = getContracts({ public: chain.publicClient, wallet }, chain.deployment.contracts);
  await chain.wait(as.token.write.approve([registry, stake]));
  await chain.wait(as.nodeRegistry.write.stake([stake, peerIdOf(operator.address), "http://127.0.0.1:0"]));
  return { chain, operator, ...(await listDemoAdapters(chain, adapters)) };
}

/** The demo adapters listed by chain.adapterOwner (content hash and size given), contributors c1 (70%), c2 (30%). */
export async function listDemoAdapters(
  chain: Chain,
  adapters: Record<"dragon" | "ocean" | "robot", { id: Hex; bytes: number }>,
): Promise<Pick<PaidSetup, "listings" | "contributors">> {
  const contributors = [
    { address: chain.c1.account.address, weightBps: 7000 },
    { address: chain.c2.account.address, weightBps: 3000 },
  ];
  const listings = {} as PaidSetup["listings"];
  for (const name of DEMO_ADAPTERS) {
    const { id, bytes } = adapters[name];
    await chain.wait(
      chain
        .as(chain.adapterOwner)
        .adapterRegistry.write.register([
          id,
          `0x${"11".repeat(32)}`,
          8,
          BigInt(bytes),
          `ipfs://${name}`,
          contributors.map((c) => c.address),
          contributors.map((c) => c.weightBps),
        ]),
    );
    listings[name] = listingIdOf(chain.adapterOwner.account.address, id);
  }
  return { listings, contributors };
}

export function operatorWallet(chain: Chain, operator: PrivateKeyAccount) {
  return createWalletClient({
    account: operator,
    chain: chain.publicClient.chain,
    transport: custom(chain.conn.provider),
  });
}

/** Paid-mode options for a node on this chain (no peer network; settlement only when a test asks). */
export function paidOptions(setup: PaidSetup): NodeServiceOptions["paid"] {
  const { chain, operator } = setup;
  return {
    clients: { public: chain.publicClient, wallet: operatorWallet(chain, operator) },
    deployment: chain.deployment,
    pricePerToken: PRICE,
    settlement: { intervalMs: 1e12, thresholdWei: 2n ** 255n, pollMs: 3_600_000 },
    p2p: null,
    eventPollMs: 50,
  };
}

export async function startPaidNode(setup: PaidSetup, dataDir?: string): Promise<TestNode> {
  return startTestNode({ dataDir, paid: paidOptions(setup), settleOnStop: false });
}

/** The ids (content hashes) and canonical sizes of the demo adapters, as a node imports them. */
export async function demoAdapterIds(): Promise<Record<"dragon" | "ocean" | "robot", { id: Hex; bytes: number }>> {
  const model = await stories();
  const out = {} as Record<"dragon" | "ocean" | "robot", { id: Hex; bytes: number }>;
  for (const name of DEMO_ADAPTERS) {
    const expect = { config: model.weights.config, name: model.name, qkBasis: model.qkBasis, maxRank: 64 };
    const { adapter, encoded } = await loadPeftAdapter(join(ADAPTERS_DIR, name), expect);
    out[name] = { id: adapter.id as Hex, bytes: encoded.length };
  }
  return out;
}

/** POSTs a request with a voucher from `payer` for `cumulativeAmount` on `listingId` (to `node`, this node by default). */
export async function paidPost(
  t: TestNode,
  setup: PaidSetup,
  payer: VoucherSigner,
  listingId: Hex,
  cumulativeAmount: bigint,
  body: Record<string, unknown>,
  options: { node?: Address; domain?: EscrowDomain; path?: string } = {},
): Promise<RawResponse> {
  const voucher = {
    payer: signerAddress(payer),
    node: options.node ?? setup.operator.address,
    listingId,
    cumulativeAmount,
  };
  const signature = await signVoucher(payer, voucher, options.domain ?? setup.chain.domain);
  return postJson(t.node.url, options.path ?? "/v1/completions", body, {
    "x-openlora-voucher": encodeVoucherHeader({ voucher, signature }),
  });
}

/** A greedy completion of PROMPT that runs exactly `maxTokens` tokens (so its cost is known). */
export function fixedRequest(model: string, maxTokens: number, extra: Record<string, unknown> = {}) {
  return { model, prompt: PROMPT, max_tokens: maxTokens, temperature: 0, ignore_eos: true, ...extra };
}

/** The most a fixedRequest can cost: price x (prompt + max_tokens). */
export function maxCost(maxTokens: number): bigint {
  return PRICE * BigInt(PROMPT_TOKENS + maxTokens);
}
