// Fixtures of the p2p suites: a Hardhat in-process chain with the contracts, operators (local keys, like a
// keystore wallet) staked and bound to a node's peer id, engines on stories260K, peer nodes with test timings,
// and clean-up that stops every node so that vitest can exit.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createWalletClient, custom, type Address, type Hex, type LocalAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { getContracts } from "../../node/chain/contracts.ts";
import { listingIdOf } from "../../node/chain/listing.ts";
import type { Backend } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { Engine } from "../../node/engine/runtime/engine.ts";
import type { EngineRequest } from "../../node/engine/runtime/types.ts";
import { P2pHost } from "../../node/p2p/host.ts";
import { PeerNode, type PeerNodeOptions } from "../../node/p2p/peer-node.ts";
import { peerIdBytesHex } from "../../node/p2p/stake-oracle.ts";
import { createChain, E, type Chain } from "../contracts/fixture.ts";
import { stories } from "../helpers/stories.ts";

export { createChain, E, type Chain };

/** Timings short enough for tests: announce every 300 ms, entries live 1.5 s, stake answers 400 ms. */
export const FAST = {
  announceIntervalMs: 300,
  minAnnounceIntervalMs: 50,
  entryTtlMs: 1_500,
  keeperIntervalMs: 150,
  stakeTtlMs: 400,
  negativeStakeTtlMs: 200,
  registryTtlMs: 200,
} satisfies PeerNodeOptions["timings"];

/** Everything a test starts, stopped in reverse order by `cleanup()` (call it in afterEach/afterAll). */
export class Cleanup {
  #stops: (() => Promise<unknown>)[] = [];

  add<T>(value: T, stop: (v: T) => Promise<unknown>): T {
    this.#stops.push(() => stop(value));
    return value;
  }

  async run(): Promise<void> {
    const stops = this.#stops.reverse();
    this.#stops = [];
    for (const stop of stops) await stop().catch((error: unknown) => console.error("cleanup:", error));
  }
}

export async function tempDir(cleanup: Cleanup, prefix = "openlora-p2p-"): Promise<string> {
  return cleanup.add(await mkdtemp(join(tmpdir(), prefix)), (d) => rm(d, { recursive: true, force: true }));
}

/** A fresh operator key with gas money (a local account: how a keystore wallet signs). */
export async function newOperator(chain: Chain): Promise<LocalAccount> {
  const account = privateKeyToAccount(generatePrivateKey());
  await chain.testClient.setBalance({ address: account.address, value: E(10) });
  return account;
}

/** Funds, approves and stakes `amount` for `operator`, binding `peerId` (NodeRegistry.stake). */
export async function stake(chain: Chain, operator: LocalAccount, peerId: string, amount = E(100)): Promise<void> {
  const wallet = createWalletClient({
    account: operator,
    chain: chain.publicClient.chain,
    transport: custom(chain.conn.provider),
  });
  const c = getContracts({ public: chain.publicClient, wallet }, chain.deployment.contracts);
  await chain.fund(operator.address, amount);
  await chain.wait(c.token.write.approve([chain.deployment.contracts.NodeRegistry, amount]));
  await chain.wait(c.nodeRegistry.write.stake([amount, peerIdBytesHex(peerId), "http://127.0.0.1:0"]));
}

/** Starts unbonding the operator's whole stake: it stops being active at once. */
export async function unstake(chain: Chain, operator: LocalAccount): Promise<void> {
  const wallet = createWalletClient({
    account: operator,
    chain: chain.publicClient.chain,
    transport: custom(chain.conn.provider),
  });
  const c = getContracts({ public: chain.publicClient, wallet }, chain.deployment.contracts);
  const amount = await c.nodeRegistry.read.stakeOf([operator.address]);
  await chain.wait(c.nodeRegistry.write.requestUnstake([amount]));
}

export interface ListOptions {
  /** Whose canonical bytes give the size listed (else `size`). */
  engine?: Engine;
  /** The size listed, in bytes. */
  size?: number;
  /** Default 8. */
  rank?: number;
  /** Retire the listing right after registering it. */
  retired?: boolean;
  /** Who registers it. Default the chain's adapter owner. */
  registrant?: Chain["adapterOwner"];
}

/** Lists content hash `id` in AdapterRegistry (contributor c1, 100%); returns the listing id. */
export async function listAdapter(chain: Chain, id: Hex, options: ListOptions = {}): Promise<Hex> {
  const registrant = options.registrant ?? chain.adapterOwner;
  const size = options.size ?? (await options.engine?.adapters.readBytes(id))?.length;
  if (size === undefined) throw new Error(`listAdapter: no size for ${id} (give engine or size)`);
  const c = chain.as(registrant).adapterRegistry.write;
  const base: Hex = `0x${"11".repeat(32)}`;
  const contributors = [chain.c1.account.address];
  await chain.wait(c.register([id, base, options.rank ?? 8, BigInt(size), `p2p://${id}`, contributors, [10_000]]));
  const listingId = listingIdOf(registrant.account.address, id);
  if (options.retired) await chain.wait(c.retire([listingId]));
  return listingId;
}

/** An engine on stories260K with a CPU backend (optionally slowed down per step). */
export async function makeEngine(
  cleanup: Cleanup,
  options: { stepDelayMs?: number; adapterSlots?: number } = {},
): Promise<Engine> {
  const model = await stories();
  const inner = createCpuBackend(model.weights, {
    numBlocks: 64,
    blockSize: 16,
    adapterSlots: options.adapterSlots ?? 2,
    maxRank: 16,
  });
  const delay = options.stepDelayMs ?? 0;
  const backend: Backend =
    delay > 0
      ? {
          ...inner,
          async sample(steps, params, uniforms) {
            await new Promise((r) => setTimeout(r, delay));
            return inner.sample(steps, params, uniforms);
          },
        }
      : inner;
  const engine = await Engine.create({
    backend,
    tokenizer: model.tokenizer,
    modelName: model.name,
    adapterDir: await tempDir(cleanup, "openlora-store-"),
  });
  engine.start();
  return cleanup.add(engine, (e) => e.close());
}

/** Runs a request on an engine locally: the oracle for remote runs. */
export async function runLocal(
  engine: Engine,
  request: Omit<EngineRequest, "signal">,
): Promise<{ tokenIds: number[]; text: string }> {
  const stream = engine.submit(request);
  const tokenIds: number[] = [];
  for await (const event of stream) if (event.type === "token") tokenIds.push(event.tokenId);
  const result = await stream.result;
  return { tokenIds, text: result.text };
}

export interface PeerSpec extends Partial<Omit<PeerNodeOptions, "chain" | "dataDir">> {
  /** Stake an operator bound to this node's peer id (creates the signer when none is given). */
  staked?: boolean;
}

/** A PeerNode on the test chain (created, optionally staked, started; stopped by cleanup). */
export async function makePeer(
  chain: Chain,
  cleanup: Cleanup,
  spec: PeerSpec = {},
): Promise<PeerNode & { operator: LocalAccount | null }> {
  const { staked = false, ...rest } = spec;
  const signer = rest.signer ?? (staked ? await newOperator(chain) : undefined);
  const node = await PeerNode.create({
    dataDir: await tempDir(cleanup),
    chain: {
      client: chain.publicClient,
      chainId: chain.chainId,
      nodeRegistry: chain.deployment.contracts.NodeRegistry,
      adapterRegistry: chain.deployment.contracts.AdapterRegistry,
    },
    colocationWhitelist: ["127.0.0.1"],
    ...rest,
    signer,
    timings: { ...FAST, ...rest.timings },
  });
  cleanup.add(node, (n) => n.stop());
  if (staked) await stake(chain, signer as LocalAccount, node.peerId);
  await node.start();
  return Object.assign(node, { operator: (signer as LocalAccount | undefined) ?? null });
}

/** A bare libp2p host on the announcement topic, without any validation: a forger's tool. */
export async function makeBareHost(cleanup: Cleanup): Promise<P2pHost> {
  const host = await P2pHost.create({ dataDir: await tempDir(cleanup) });
  cleanup.add(host, (h) => h.stop());
  await host.start();
  return host;
}

/** Polls `condition` every 20 ms until it holds; throws after `timeoutMs` naming `what`. */
export async function until(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export type { Address };
