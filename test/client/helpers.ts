// Fixtures of the client suites: a Hardhat in-process chain with the contracts and the three demo adapters listed
// (contributors 70/30), paid nodes on it (real NodeService on 127.0.0.1: cpu engine on stories260K, ledger on
// disk, libp2p gossip on loopback, operators staked and bound to the nodes' peer ids), payers with deposits, the
// chain's JSON-RPC over HTTP for child processes (the `openlora` CLI), and proxies that stand between a client
// and a node (one that holds a node's answer back, one that forges its receipts).
import { spawn, type ChildProcess } from "node:child_process";
import { cp, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { join } from "node:path";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { createWalletClient, custom, parseEther, type Address, type Hex, type LocalAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { NodeService, silentLogger } from "../../node/api/index.ts";
import { getContracts, parseReceiptJson, receiptJson, saveDeployment, signReceipt } from "../../node/chain/index.ts";
import { importKeystore, writeKeystoreFile } from "../../node/chain/keystore.ts";
import { PayingClient, type PayingClientOptions } from "../../node/client/index.ts";
import { sseEvents, sseLine } from "../../node/client/sse.ts";
import { loadOrCreatePeerKey } from "../../node/p2p/peer-key.ts";
import { demoAdapterIds, listDemoAdapters, PRICE, PROMPT } from "../api/paid-helpers.ts";
import { CLI } from "../cli/run-cli.ts";
import { createChain, E, type Chain } from "../contracts/fixture.ts";
import { DEMO_ADAPTERS, STORIES_DIR } from "../helpers/stories.ts";
import { Cleanup, stake, tempDir, until } from "../p2p/helpers.ts";

export { Cleanup, E, PRICE, PROMPT, tempDir, until, type Chain };
export type DemoName = (typeof DEMO_ADAPTERS)[number];

/** Gossip timings for tests: announcements every 400 ms, entries live 15 s (slack for a loaded machine). */
export const TIMINGS = {
  announceIntervalMs: 400,
  minAnnounceIntervalMs: 50,
  entryTtlMs: 15_000,
  keeperIntervalMs: 200,
  stakeTtlMs: 1_000,
  negativeStakeTtlMs: 200,
  registryTtlMs: 500,
};

export interface PaidNetwork {
  chain: Chain;
  adapters: Record<DemoName, { id: Hex; bytes: number }>;
  /** Listing ids of the demo adapters (registered by chain.adapterOwner). */
  listings: Record<DemoName, Hex>;
  contributors: { address: Address; weightBps: number }[];
}

/** A chain with the demo adapters listed, contributors c1 (70%) and c2 (30%). */
export async function paidNetwork(): Promise<PaidNetwork> {
  const chain = await createChain();
  const adapters = await demoAdapterIds();
  return { chain, adapters, ...(await listDemoAdapters(chain, adapters)) };
}

/** A funded key (ETH for gas), with its private key (a keystore can be made of it). */
export async function newKey(chain: Chain): Promise<{ account: PrivateKeyAccount; privateKey: Hex }> {
  const privateKey = generatePrivateKey();
  const account = privateKeyToAccount(privateKey);
  await chain.testClient.setBalance({ address: account.address, value: parseEther("10") });
  return { account, privateKey };
}

/** A free port on 127.0.0.1 (for an API whose URL must be announced before it listens). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A folder holding copies of some demo adapters (what a node imports at start). */
export async function adapterFolder(cleanup: Cleanup, names: DemoName[]): Promise<string> {
  const dir = await tempDir(cleanup, "openlora-adapters-");
  for (const name of names) await cp(join(STORIES_DIR, "adapters", name), join(dir, name), { recursive: true });
  return dir;
}

export interface PaidNode {
  service: NodeService;
  operator: PrivateKeyAccount;
  url: string;
  /** Full multiaddr (with /p2p/<id>) to bootstrap through. */
  bootstrap: string;
  dataDir: string;
}

export interface PaidNodeSpec {
  price?: bigint;
  adapters: DemoName[];
  bootstrap?: string[];
  /** The API URL announced (a proxy in front of the node); default the node's own. */
  publicApi?: (ownUrl: string, operator: PrivateKeyAccount) => string | Promise<string>;
}

/** A staked paid node in this process, joined to the gossip. */
export async function startPaidNode(net: PaidNetwork, cleanup: Cleanup, spec: PaidNodeSpec): Promise<PaidNode> {
  const { chain } = net;
  const dataDir = await tempDir(cleanup, "openlora-node-");
  const { account: operator } = await newKey(chain);
  const peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir)).toString();
  await stake(chain, operator, peerId);
  const port = await freePort();
  const own = `http://127.0.0.1:${port}`;
  const publicApi = spec.publicApi ? await spec.publicApi(own, operator) : own;
  const wallet = createWalletClient({
    account: operator,
    chain: chain.publicClient.chain,
    transport: custom(chain.conn.provider),
  });
  const service = await NodeService.start({
    dataDir,
    model: STORIES_DIR,
    backend: "cpu",
    adapters: await adapterFolder(cleanup, spec.adapters),
    api: { host: "127.0.0.1", port },
    log: silentLogger,
    settleOnStop: false,
    drainMs: 1_000,
    paid: {
      clients: { public: chain.publicClient, wallet },
      deployment: chain.deployment,
      pricePerToken: spec.price ?? PRICE,
      settlement: { intervalMs: 1e12, thresholdWei: 2n ** 255n, pollMs: 3_600_000 },
      p2p: {
        publicApi,
        listen: ["/ip4/127.0.0.1/tcp/0"],
        bootstrap: spec.bootstrap ?? [],
        timings: TIMINGS,
        colocationWhitelist: ["127.0.0.1"],
      },
      eventPollMs: 50,
    },
  });
  cleanup.add(service, (s) => s.stop());
  return { service, operator, url: own, bootstrap: service.paid!.peers!.host.dialAddrs()[0], dataDir };
}

/** A payer with tokens, a deposit of `amount` for each node, and ETH for gas. */
export async function newPayer(
  net: PaidNetwork,
  nodes: Address[],
  amount = E(10),
): Promise<{ account: PrivateKeyAccount; privateKey: Hex }> {
  const { chain } = net;
  const key = await newKey(chain);
  const wallet = createWalletClient({
    account: key.account,
    chain: chain.publicClient.chain,
    transport: custom(chain.conn.provider),
  });
  const c = getContracts({ public: chain.publicClient, wallet }, chain.deployment.contracts);
  await chain.fund(key.account.address, amount * BigInt(nodes.length) + E(100));
  await chain.wait(c.token.write.approve([chain.deployment.contracts.InferenceEscrow, amount * BigInt(nodes.length)]));
  for (const node of nodes) await chain.wait(c.escrow.write.deposit([node, amount]));
  return key;
}

/** A started client paying as `account`, discovering through gossip from `bootstrap`. */
export async function newClient(
  net: PaidNetwork,
  cleanup: Cleanup,
  account: LocalAccount,
  options: Partial<PayingClientOptions> & { bootstrap?: string[] } = {},
): Promise<PayingClient> {
  const { bootstrap, ...rest } = options;
  const client = await PayingClient.create({
    publicClient: net.chain.publicClient,
    deployment: net.chain.deployment,
    account,
    dataDir: options.dataDir ?? (await tempDir(cleanup, "openlora-payer-")),
    discovery: { bootstrap, timings: TIMINGS },
    ...rest,
  });
  cleanup.add(client, (c) => c.stop());
  await client.start();
  return client;
}

/** The in-process chain's JSON-RPC over HTTP on 127.0.0.1, for child processes (`--rpc`). */
export async function rpcBridge(chain: Chain, cleanup: Cleanup): Promise<string> {
  const provider = chain.conn.provider;
  const call = async (r: { id: unknown; method: string; params?: unknown[] }) => {
    try {
      return { jsonrpc: "2.0", id: r.id, result: await provider.request({ method: r.method, params: r.params }) };
    } catch (error) {
      const e = error as { code?: number; message: string; data?: unknown };
      return { jsonrpc: "2.0", id: r.id, error: { code: e.code ?? -32603, message: e.message, data: e.data } };
    }
  };
  const server = createServer((req, res) => {
    void readAll(req).then(async (text) => {
      const body = JSON.parse(text) as Parameters<typeof call>[0] | Parameters<typeof call>[0][];
      const out = Array.isArray(body) ? await Promise.all(body.map(call)) : await call(body);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(out));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.add(
    server,
    (s) =>
      new Promise((resolve) => {
        s.closeAllConnections();
        s.close(resolve);
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export function readAll(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (p: Buffer) => parts.push(p));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

/** Files a CLI process of `account` needs: keystore (small scrypt cost), password file, deployment folder. */
export async function cliFiles(
  net: PaidNetwork,
  cleanup: Cleanup,
  privateKey: Hex,
): Promise<{ dataDir: string; args: string[] }> {
  const dir = await tempDir(cleanup, "openlora-cli-");
  const dataDir = join(dir, "data");
  await writeKeystoreFile(join(dataDir, "keystore.json"), await importKeystore(privateKey, "pw", { scryptN: 1024 }));
  await writeFile(join(dir, "password"), "pw\n");
  await saveDeployment(join(dir, "deployments"), net.chain.deployment);
  return {
    dataDir,
    args: ["--data-dir", dataDir, "--password-file", join(dir, "password"), "--deployment", join(dir, "deployments")],
  };
}

/** `openlora ...args` as a child process that keeps running; its output collected. */
export function spawnCli(cleanup: Cleanup, args: string[]): ChildProcess & { out: () => string; err: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NODE_NO_WARNINGS: "1" } });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  cleanup.add(child, async (c) => {
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });
  return Object.assign(child, { out: () => out, err: () => err });
}

/**
 * A TCP proxy in front of a node that passes requests and answer heads through but holds back the body of every
 * streamed (200 text/event-stream) answer: what a client sees when a node dies after accepting a request and
 * before its first token reaches the client. When the node's side closes, the client's connection is cut.
 */
export async function holdingProxy(cleanup: Cleanup, upstreamPort: number): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const upstream = netConnect(upstreamPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    let buffer = Buffer.alloc(0);
    let holding = false;
    upstream.on("data", (data: Buffer) => {
      if (holding) return;
      buffer = Buffer.concat([buffer, data]);
      for (;;) {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buffer.subarray(0, end + 4).toString("latin1");
        if (/^HTTP\/1\.1 200/.test(head) && /text\/event-stream/i.test(head)) {
          client.write(buffer.subarray(0, end + 4));
          holding = true;
          return;
        }
        const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffer.length < end + 4 + length) return;
        client.write(buffer.subarray(0, end + 4 + length));
        buffer = buffer.subarray(end + 4 + length);
      }
    });
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on("close", cut).on("error", cut);
    client.on("close", cut).on("error", cut);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.add(
    server,
    (s) =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        s.close(resolve);
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * An HTTP proxy in front of a node whose streamed receipts it rewrites with `forge` and signs again with the
 * node's key: a node whose receipts claim something else than what it served (`forge` gets the receipt and
 * returns the forged one). It serves only the adapter `only` (404 for any other, so it never fetches one).
 */
export async function forgingProxy(
  net: PaidNetwork,
  cleanup: Cleanup,
  upstream: () => string,
  operator: PrivateKeyAccount,
  only: Hex,
  forge: (receipt: ReturnType<typeof parseReceiptJson>["receipt"]) => ReturnType<typeof parseReceiptJson>["receipt"],
): Promise<string> {
  const server = createServer((req, res) => {
    void (async () => {
      const body = req.method === "GET" ? undefined : await readAll(req);
      if (body !== undefined && (JSON.parse(body) as { model?: string }).model !== only) {
        res.writeHead(404, { "content-type": "application/json" });
        return void res.end(
          JSON.stringify({ error: { message: "not here", type: "not_found_error", code: "model_not_found" } }),
        );
      }
      const headers: Record<string, string> = {};
      for (const name of ["content-type", "x-openlora-voucher"]) {
        const v = req.headers[name];
        if (typeof v === "string") headers[name] = v;
      }
      const answer = await fetch(`${upstream()}${req.url}`, { method: req.method, headers, body });
      const type = answer.headers.get("content-type") ?? "";
      res.writeHead(answer.status, { "content-type": type });
      if (!type.includes("text/event-stream")) return void res.end(await answer.text());
      for await (const data of sseEvents(answer.body!)) {
        if (data === "[DONE]") {
          res.write(sseLine("[DONE]"));
          continue;
        }
        const chunk = JSON.parse(data) as Record<string, unknown>;
        if (chunk.receipt !== undefined) {
          const forged = forge(parseReceiptJson(chunk.receipt).receipt);
          const domain = {
            chainId: net.chain.chainId,
            verifyingContract: net.chain.deployment.contracts.InferenceEscrow,
          };
          chunk.receipt = receiptJson(forged, await signReceipt(operator, forged, domain));
        }
        res.write(sseLine(chunk));
      }
      res.end();
    })().catch((error: unknown) => res.destroy(error as Error));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.add(
    server,
    (s) =>
      new Promise((resolve) => {
        s.closeAllConnections();
        s.close(resolve);
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Waits until the client routes `model` to exactly these operators, in this order. */
export async function routedTo(
  client: PayingClient,
  model: string,
  operators: Address[],
  timeoutMs = 30_000,
): Promise<void> {
  await until(
    `routes to ${operators.join(", ")}`,
    async () => {
      const { candidates } = await client.route(model);
      return candidates.map((c) => c.announcement.operator).join() === operators.join();
    },
    timeoutMs,
  );
}
