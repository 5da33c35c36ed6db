// Adapters a node lacks, fetched from a peer over libp2p through the HTTP API, between two real paid nodes on
// 127.0.0.1 (a Hardhat in-process chain, each operator staked and bound to its node's peer id): a paid request
// naming an adapter only the origin holds is fetched (for the listing its voucher pays) and served with the
// origin's tokens; nothing is fetched for a request nobody pays for; POST /v1/adapters { id } fetches by id with
// the admin token. The server starts with no adapter at all.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { parseEther, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { complete } from "../../node/engine/index.ts";
import type { FetchedAdapter } from "../../node/p2p/adapter-fetcher.ts";
import { loadOrCreatePeerKey } from "../../node/p2p/index.ts";
import { FAST, listAdapter, stake, until } from "../p2p/helpers.ts";
import { ADAPTERS_DIR, postJson, rawRequest, startTestNode, type RawResponse, type TestNode } from "./helpers.ts";
import {
  demoAdapterIds,
  fixedRequest,
  maxCost,
  operatorWallet,
  paidChain,
  paidPost,
  PRICE,
  PROMPT,
  type PaidSetup,
} from "./paid-helpers.ts";

let setup: PaidSetup;
let ids: Awaited<ReturnType<typeof demoAdapterIds>>;
/** Holds the three demo adapters. */
let origin: TestNode;
/** Holds none; fetches from the origin. */
let server: TestNode;
let serverOperator: PrivateKeyAccount;
const fetched: FetchedAdapter[] = [];

/** A paid node with a peer network on loopback, its operator staked and bound to its peer id. */
async function startPeer(options: { adapters?: string; bootstrap?: string[] }): Promise<{
  t: TestNode;
  operator: PrivateKeyAccount;
}> {
  const { chain } = setup;
  const operator = privateKeyToAccount(generatePrivateKey());
  await chain.testClient.setBalance({ address: operator.address, value: parseEther("10") });
  const dataDir = await mkdtemp(join(tmpdir(), "openlora-peer-fetch-"));
  await stake(chain, operator, peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir)).toString());
  const t = await startTestNode({
    dataDir,
    adapters: options.adapters,
    settleOnStop: false,
    paid: {
      clients: { public: chain.publicClient, wallet: operatorWallet(chain, operator) },
      deployment: chain.deployment,
      pricePerToken: PRICE,
      settlement: { intervalMs: 1e12, thresholdWei: 2n ** 255n, pollMs: 3_600_000 },
      p2p: {
        listen: ["/ip4/127.0.0.1/tcp/0"],
        bootstrap: options.bootstrap,
        timings: FAST,
        colocationWhitelist: ["127.0.0.1"],
      },
      eventPollMs: 50,
    },
  });
  return { t, operator };
}

beforeAll(async () => {
  ids = await demoAdapterIds();
  setup = await paidChain(ids);
  origin = (await startPeer({ adapters: ADAPTERS_DIR })).t;
  const started = await startPeer({ bootstrap: origin.node.paid!.peers!.host.dialAddrs() });
  server = started.t;
  serverOperator = started.operator;
  server.node.paid!.peers!.fetcher!.on("fetched", (f) => fetched.push(f));
  await setup.chain.depositFor(setup.chain.payerA, serverOperator.address, parseEther("1"));
  const originPeer = origin.node.paid!.peers!.peerId;
  await until("the server to see the origin announce the demo adapters", () =>
    Object.values(ids).every(({ id }) =>
      server.node.paid!.peers!.table.withAdapter(id).some((e) => e.peerId === originPeer),
    ),
  );
});
afterAll(async () => {
  await server?.node.stop();
  await origin?.node.stop();
});

const json = (res: RawResponse) => JSON.parse(res.body) as Record<string, any>;

/** A request to the server paid by payer A on `listingId`. */
function paid(listingId: Hex, amount: bigint, body: Record<string, unknown>): Promise<RawResponse> {
  return paidPost(server, setup, setup.chain.payerA, listingId, amount, body, { node: serverOperator.address });
}

/** What the origin's engine itself answers to fixedRequest(adapter, maxTokens). */
async function originText(adapterId: Hex, maxTokens: number): Promise<string> {
  const request = { adapterId, prompt: PROMPT, maxTokens, temperature: 0, ignoreEos: true };
  return (await complete(origin.node.engine, request)).text;
}

describe("adapters fetched from peers through the API", () => {
  it("fetches an adapter a paid request names, for the voucher's listing, and answers with the origin's tokens", async () => {
    const { dragon, ocean } = ids;
    const engine = server.node.engine;
    expect(engine.adapters.list()).toEqual([]);
    // GET /v1/peers: the routing table learned from gossip names the origin and what it holds.
    const peers = json(await rawRequest(server.node.url, "GET", "/v1/peers"));
    const originEntry = peers.data.find((p: { peer_id: string }) => p.peer_id === origin.node.paid!.peers!.peerId);
    expect(originEntry.announcement.adapters.map((a: { id: string }) => a.id).sort()).toEqual(
      [dragon.id, ocean.id, ids.robot.id].sort(),
    );

    // Nobody pays: 402, and nothing is fetched.
    const unpaid = await postJson(server.node.url, "/v1/completions", fixedRequest(ocean.id, 8));
    expect([unpaid.status, json(unpaid).error.code]).toEqual([402, "voucher_required"]);
    expect(engine.adapters.has(ocean.id)).toBe(false);
    expect(fetched).toEqual([]);

    // Paid: fetched from the origin, then served; the tokens are the origin's own.
    const res = await paid(setup.listings.dragon, maxCost(16), fixedRequest(dragon.id, 16));
    expect(res.status).toBe(200);
    const body = json(res);
    expect(body.choices[0].text).toBe(await originText(dragon.id, 16));
    expect([body.receipt.listing_id.toLowerCase(), body.receipt.adapter]).toEqual([
      setup.listings.dragon.toLowerCase(),
      dragon.id,
    ]);
    expect(fetched).toEqual([
      expect.objectContaining({ id: dragon.id, from: origin.node.paid!.peers!.peerId, bytes: dragon.bytes }),
    ]);
    expect(engine.adapters.has(dragon.id)).toBe(true);
    expect(await engine.adapters.readBytes(dragon.id)).toEqual(await origin.node.engine.adapters.readBytes(dragon.id));
    const record = await server.node.ledger.getRequest(res.headers["x-request-id"] as string);
    expect(record).toMatchObject({ adapter: dragon.id, listingId: setup.listings.dragon.toLowerCase() });
  });

  it("fetches for the listing the voucher pays: a listing that declares another size gets 404, the right one serves", async () => {
    const { robot } = ids;
    const { chain } = setup;
    // A second live listing of robot's content, by another registrant, that declares one byte too many: the gate
    // takes its vouchers (live, same content), but the fetch for it must take exactly that size, which no peer has.
    const misSized = await listAdapter(chain, robot.id, { size: robot.bytes + 1, registrant: chain.c3 });
    const before = fetched.length;
    const refused = await paid(misSized, maxCost(8), fixedRequest(robot.id, 8));
    expect(refused.status).toBe(404);
    expect(json(refused).error).toMatchObject({ code: "model_not_found", param: "model" });
    expect(json(refused).error.message).toMatch(/no peer could supply it: .*declares/);
    expect(server.node.engine.adapters.has(robot.id)).toBe(false);
    expect(fetched).toHaveLength(before);
    // Nothing was charged: the refused request left no record, and its channel nothing unsettled.
    const channel = { payer: chain.payerA.account.address, node: serverOperator.address, listingId: misSized };
    expect(await server.node.ledger.unsettledAmount(channel)).toBe(0n);

    const served = await paid(setup.listings.robot, maxCost(8), fixedRequest(robot.id, 8));
    expect(served.status).toBe(200);
    expect(json(served).choices[0].text).toBe(await originText(robot.id, 8));
    expect(fetched.slice(before)).toEqual([expect.objectContaining({ id: robot.id, bytes: robot.bytes })]);
  });

  it("POST /v1/adapters { id } fetches by id from peers with the admin token, and the alias then serves", async () => {
    const { ocean } = ids;
    const admin = { authorization: `Bearer ${server.node.adminToken.token}` };
    const url = server.node.url;
    expect((await postJson(url, "/v1/adapters", { id: ocean.id })).status).toBe(401);
    expect(server.node.engine.adapters.has(ocean.id)).toBe(false);

    const before = fetched.length;
    const created = await postJson(url, "/v1/adapters", { id: ocean.id, alias: "sea" }, admin);
    expect(created.status).toBe(201);
    expect(json(created)).toMatchObject({ id: "sea", kind: "adapter", adapter: ocean.id, aliases: ["sea"] });
    expect(fetched.slice(before)).toEqual([
      expect.objectContaining({ id: ocean.id, from: origin.node.paid!.peers!.peerId }),
    ]);
    const again = await postJson(url, "/v1/adapters", { id: ocean.id }, admin);
    expect([again.status, json(again).adapter]).toEqual([200, ocean.id]);
    expect(fetched).toHaveLength(before + 1);
    const models = json(await rawRequest(url, "GET", "/v1/models")).data as { id: string }[];
    expect(models.map((m) => m.id)).toContain("sea");

    const unknown = await postJson(url, "/v1/adapters", { id: `0x${"ab".repeat(32)}` }, admin);
    expect([unknown.status, json(unknown).error.code, json(unknown).error.param]).toEqual([
      404,
      "adapter_unavailable",
      "id",
    ]);

    const res = await paid(setup.listings.ocean, maxCost(12), fixedRequest("sea", 12));
    expect(res.status).toBe(200);
    expect(json(res).choices[0].text).toBe(await originText(ocean.id, 12));
  });
});
