// Issue 13, item 17, on a real (in-process Hardhat) NodeRegistry: announcements from fresh identities (a new
// libp2p key and a new operator key each, correctly signed) would each cost a stake read. Look-ups for operators
// not known here come out of a budget per relaying peer, so the reads stay at the budget while an honest node
// relayed by another peer still gets in; a never-staked operator announced by its own peer is scored down.
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { beforeAll, describe, expect, it } from "vitest";
import type { Hex, LocalAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { AnnouncementValidator } from "../../node/p2p/announce-validator.ts";
import { signAnnouncement, type AnnouncementDomain } from "../../node/p2p/announcement-sig.ts";
import { ANNOUNCEMENT_VERSION, encodeAnnouncement } from "../../node/p2p/announcement.ts";
import { PeerTable } from "../../node/p2p/peer-table.ts";
import { RegistryStakeOracle } from "../../node/p2p/stake-oracle.ts";
import { createChain, newOperator, stake, type Chain } from "../p2p/helpers.ts";

let chain: Chain;
beforeAll(async () => {
  chain = await createChain();
});

async function freshPeerId(): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair("Ed25519")).toString();
}

/** A correctly signed announcement of `peerId` by `operator`. */
async function announcement(domain: AnnouncementDomain, peerId: string, operator: LocalAccount, ts: number) {
  const body = {
    v: ANNOUNCEMENT_VERSION,
    peerId,
    operator: operator.address,
    multiaddrs: ["/ip4/127.0.0.1/tcp/4001"],
    api: "",
    adapters: [{ id: `0x${"ab".repeat(32)}` as Hex, tier: "gpu" as const, listings: [] }],
    pricePerToken: 0n,
    queueDepth: 0,
    freeSlots: 1,
    ts,
    seq: ts,
  };
  return encodeAnnouncement({ ...body, sig: await signAnnouncement(operator, body, domain) });
}

describe("stake look-ups under fresh identities (item 17)", () => {
  it("spends at most the relay's budget of chain reads on 120 made-up identities; an honest node still gets in", async () => {
    const registry = chain.deployment.contracts.NodeRegistry;
    const domain = { chainId: chain.chainId, verifyingContract: registry };
    const oracle = new RegistryStakeOracle({ client: chain.publicClient, registry });
    const clock = { now: Date.now() };
    const table = new PeerTable({ now: () => clock.now });
    const validator = new AnnouncementValidator({
      table,
      oracle,
      domain,
      selfPeerId: await freshPeerId(),
      now: () => clock.now,
      lookups: { capacity: 8, refillPerSecond: 1 },
    });
    const relay = await freshPeerId(); // the attacker's connection, relaying what it makes up

    for (let i = 0; i < 120; i++) {
      const peerId = await freshPeerId();
      const bytes = await announcement(domain, peerId, privateKeyToAccount(generatePrivateKey()), clock.now);
      const verdict = await validator.admit(peerId, relay, bytes);
      expect(verdict.ok).toBe(false);
    }
    // Without the budget every one would have been a read (120); the clock has not moved, so no refill.
    expect(oracle.reads).toBe(8);
    expect(table.drops["not-staked"]).toBe(8);
    expect(table.drops["lookup-limited"]).toBe(112);

    // An honest node, staked, relayed by another peer: its look-up is not the attacker's to spend.
    const operator = await newOperator(chain);
    const honest = await freshPeerId();
    await stake(chain, operator, honest);
    const accepted = await validator.admit(
      honest,
      await freshPeerId(),
      await announcement(domain, honest, operator, clock.now),
    );
    expect(accepted.ok).toBe(true);
    // Its refreshes through the attacker's relay cost no budget (its operator was seen staked).
    const refresh = await validator.admit(honest, relay, await announcement(domain, honest, operator, clock.now + 1));
    expect(refresh.ok).toBe(true);
    // The budget refills with time: one second later, one more look-up for the relay.
    clock.now += 1000;
    const later = await freshPeerId();
    const one = await validator.admit(
      later,
      relay,
      await announcement(domain, later, privateKeyToAccount(generatePrivateKey()), clock.now),
    );
    expect(one).toMatchObject({ ok: false, reason: "not-staked" });
  });

  it("scores a never-staked operator announced by its own peer (gossipsub Reject), not one relayed", async () => {
    const registry = chain.deployment.contracts.NodeRegistry;
    const domain = { chainId: chain.chainId, verifyingContract: registry };
    const validator = new AnnouncementValidator({
      table: new PeerTable(),
      oracle: new RegistryStakeOracle({ client: chain.publicClient, registry }),
      domain,
      selfPeerId: await freshPeerId(),
    });
    const made = await freshPeerId();
    const bytes = await announcement(domain, made, privateKeyToAccount(generatePrivateKey()), Date.now());
    expect(await validator.check(made, made, bytes)).toMatchObject({ reason: "not-staked", penalize: true });
    // Relayed, it may be an honest relay's stale view of a stake that just lapsed: dropped, not scored.
    expect(await validator.check(made, await freshPeerId(), bytes)).toMatchObject({
      reason: "not-staked",
      penalize: false,
    });
  });
});
