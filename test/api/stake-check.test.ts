// Paid mode refuses to start (before it loads the model, before anything is announced) without an active stake
// bound to this node's peer id, or on another chain than the deployment's; each refusal names what to do.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { beforeAll, describe, expect, it } from "vitest";
import { StakeError } from "../../node/api/paid-mode.ts";
import { loadOrCreatePeerKey } from "../../node/p2p/index.ts";
import { startTestNode } from "./helpers.ts";
import { demoAdapterIds, operatorWallet, paidChain, paidOptions, type PaidSetup } from "./paid-helpers.ts";

let setup: PaidSetup;

beforeAll(async () => {
  setup = await paidChain(await demoAdapterIds());
});

/** What NodeService.start threw. */
async function refusal(start: Promise<unknown>): Promise<StakeError> {
  const error = await start.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StakeError);
  return error as StakeError;
}

describe("paid mode's stake check", () => {
  it("refuses an operator without an active stake, saying how to stake", async () => {
    const stranger = privateKeyToAccount(generatePrivateKey());
    const paid = {
      ...paidOptions(setup)!,
      clients: { public: setup.chain.publicClient, wallet: operatorWallet(setup.chain, stranger) },
    };
    const error = await refusal(startTestNode({ paid }));
    expect(error.code).toBe("stake_inactive");
    expect(error.message).toContain(stranger.address);
    expect(error.hint).toMatch(/^stake first: openlora stake --amount <OPEN> --api <public URL>$/);
  });

  it("refuses a stake bound to another peer id, naming this node's", async () => {
    // The operator's stake binds a placeholder peer id; with a peer network the node's own key must be bound.
    const dataDir = await mkdtemp(join(tmpdir(), "openlora-stake-check-"));
    const peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir)).toString();
    const paid = { ...paidOptions(setup)!, p2p: { listen: ["/ip4/127.0.0.1/tcp/0"] } };
    const error = await refusal(startTestNode({ dataDir, paid }));
    expect(error.code).toBe("stake_peer_mismatch");
    expect(error.message).toContain(peerId);
    expect(error.hint).toContain(`--peer-id ${peerId}`);
  });

  it("refuses a deployment of another chain", async () => {
    const options = paidOptions(setup)!;
    const paid = { ...options, deployment: { ...options.deployment, chainId: options.deployment.chainId + 1 } };
    const error = await refusal(startTestNode({ paid }));
    expect(error.code).toBe("wrong_chain");
    expect(error.message).toContain(String(options.deployment.chainId + 1));
  });
});
