// node/chain: generated bindings are current; the TypeScript EIP-712 voucher code matches the contract (a TS-signed
// voucher settles, a tampered one is skipped, digests and domain agree); the keystore; deployment files and
// scripts/deploy.ts on the in-process network.
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createWalletClient,
  custom,
  domainSeparator,
  keccak256,
  parseSignature,
  recoverTypedDataAddress,
  toHex,
  type Hex,
} from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { bindingsUpToDate } from "../../scripts/generate-abi.ts";
import { loadDeployment, saveDeployment } from "../../node/chain/contracts.ts";
import {
  hashVoucher,
  recoverVoucherSigner,
  signVoucher,
  verifyVoucher,
  voucherDomain,
  voucherTypes,
  type Voucher,
} from "../../node/chain/voucher.ts";
import {
  createKeystore,
  importKeystore,
  KeystoreError,
  loadKeystore,
  readKeystoreFile,
  writeKeystoreFile,
} from "../../node/chain/keystore.ts";
import { availableFor, readDeposit } from "../../node/chain/deposit.ts";
import { listingIdOf, listingIdsOfContent, readListing } from "../../node/chain/listing.ts";
import { findSettlement, settlementHistory } from "../../node/chain/settlement.ts";
import { deploy } from "../../scripts/deploy.ts";
import { contentHashOf, createChain, E, LISTING_SIZE, type Chain } from "./fixture.ts";

let ch: Chain;
let X: Hex;
let tmp: string;
beforeAll(async () => {
  ch = await createChain();
  await ch.stakeNode(ch.nodeA, E(100));
  X = await ch.registerListing(ch.adapterOwner, "chain-X", [ch.c1.account.address], [10000]);
  tmp = await mkdtemp(join(tmpdir(), "openlora-chain-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("generated bindings", () => {
  it("node/chain/generated/abi.ts and bytecode.ts match the current artifacts", () => {
    // If this fails: bash scripts/run.sh node scripts/generate-abi.ts
    expect(bindingsUpToDate()).toBe(true);
  });
});

describe("EIP-712 vouchers: TypeScript against the contract", () => {
  const key = keccak256(toHex("openlora test payer"));
  const local = privateKeyToAccount(key);

  it("the domain and the digest equal the contract's", async () => {
    expect(await ch.read.escrow.read.DOMAIN_SEPARATOR()).toBe(domainSeparator({ domain: voucherDomain(ch.domain) }));
    const [, name, version, chainId, verifyingContract] = await ch.read.escrow.read.eip712Domain();
    expect({ name, version, chainId, verifyingContract }).toEqual(voucherDomain(ch.domain));
    expect(version).toBe("2");
    expect(await ch.read.escrow.read.VOUCHER_TYPEHASH()).toBe(
      keccak256(toHex("Voucher(address payer,address node,bytes32 listingId,uint256 cumulativeAmount)")),
    );
    for (const amount of [1n, E(3) + 7n, 2n ** 255n]) {
      const v: Voucher = {
        payer: local.address,
        node: ch.nodeA.account.address,
        listingId: X,
        cumulativeAmount: amount,
      };
      expect(await ch.read.escrow.read.hashVoucher([v])).toBe(hashVoucher(v, ch.domain));
    }
    expect(voucherTypes.Voucher.map((f) => f.name)).toEqual(["payer", "node", "listingId", "cumulativeAmount"]);
  });

  it("a voucher signed in TS by a local key settles; a tampered one is skipped", async () => {
    // the payer is a plain private key, as the SDK will hold it
    await ch.testClient.setBalance({ address: local.address, value: E(1) });
    const payer = createWalletClient({
      account: local,
      chain: ch.publicClient.chain,
      transport: custom(ch.conn.provider),
    });
    await ch.fund(local.address, E(10));
    const escrow = ch.deployment.contracts.InferenceEscrow;
    const asPayer = (await import("../../node/chain/contracts.ts")).getContracts(
      { public: ch.publicClient, wallet: payer },
      ch.deployment.contracts,
    );
    await ch.wait(asPayer.token.write.approve([escrow, E(10)]));
    await ch.wait(asPayer.escrow.write.deposit([ch.nodeA.account.address, E(10)]));

    const v: Voucher = { payer: local.address, node: ch.nodeA.account.address, listingId: X, cumulativeAmount: E(4) };
    const signature = await signVoucher(local, v, ch.domain);
    expect(await verifyVoucher(v, signature, ch.domain)).toBe(true);
    const tampered: Voucher = { ...v, cumulativeAmount: E(5) };
    expect(await verifyVoucher(tampered, signature, ch.domain)).toBe(false);

    const r = await ch.settle(ch.nodeA, [
      { voucher: tampered, signature },
      { voucher: v, signature },
    ]);
    expect(r.skipped.map((s) => s.reason)).toEqual(["BadSignature"]);
    expect(r.paid).toBe(E(4));
    expect(await ch.read.escrow.read.balanceOf([local.address, ch.nodeA.account.address])).toBe(E(6));
  });

  it("a wallet client (JSON-RPC account) and a local key sign identically", async () => {
    const idx = ch.wallets.indexOf(ch.payerB);
    const same = mnemonicToAccount("test test test test test test test test test test test junk", {
      addressIndex: idx,
    });
    expect(same.address).toBe(ch.payerB.account.address);
    const v: Voucher = { payer: same.address, node: ch.nodeA.account.address, listingId: X, cumulativeAmount: 99n };
    const viaRpc = await signVoucher(ch.payerB, v, ch.domain);
    expect(viaRpc).toBe(await signVoucher(same, v, ch.domain));
    expect(await verifyVoucher(v, viaRpc, ch.domain)).toBe(true);
  });

  it("verifyVoucher refuses what the contract refuses: other chain, other contract, high s, bad length", async () => {
    const v: Voucher = { payer: local.address, node: ch.nodeA.account.address, listingId: X, cumulativeAmount: 1n };
    const sig = await signVoucher(local, v, ch.domain);
    expect(await verifyVoucher(v, sig, { ...ch.domain, chainId: 1 })).toBe(false);
    expect(await verifyVoucher(v, sig, { ...ch.domain, verifyingContract: ch.deployment.contracts.OpenToken })).toBe(
      false,
    );
    expect(await verifyVoucher(v, sig.slice(0, 130) as Hex, ch.domain)).toBe(false);
    expect(await verifyVoucher(v, "0x1234", ch.domain)).toBe(false);
    const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const p = parseSignature(sig);
    const twin = `${p.r}${toHex(N - BigInt(p.s), { size: 32 }).slice(2)}${p.yParity === 0 ? "1c" : "1b"}` as Hex;
    // the twin is a real signature for plain ecrecover...
    expect(
      await recoverTypedDataAddress({
        domain: voucherDomain(ch.domain),
        types: voucherTypes,
        primaryType: "Voucher",
        message: v,
        signature: twin,
      }),
    ).toBe(local.address);
    // ...which the contract (OpenZeppelin ECDSA) and verifyVoucher both refuse
    expect(await recoverVoucherSigner(v, twin, ch.domain)).toBeNull();
    expect(await verifyVoucher(v, twin, ch.domain)).toBe(false);
    expect(await recoverVoucherSigner(v, sig, ch.domain)).toBe(local.address);
  });
});

describe("views for the node service", () => {
  it("readListing, listingIdOf and listingIdsOfContent agree with the registry", async () => {
    const registry = ch.deployment.contracts.AdapterRegistry;
    const hash = contentHashOf("chain-X");
    expect(listingIdOf(ch.adapterOwner.account.address, hash)).toBe(X);
    const view = await readListing(ch.publicClient, registry, X);
    expect(view).toMatchObject({
      listingId: X,
      registrant: ch.adapterOwner.account.address,
      contentHash: hash,
      rank: 16,
      size: Number(LISTING_SIZE),
      live: true,
      retired: false,
      retiredAt: 0n,
      contributors: [{ contributor: ch.c1.account.address, weightBps: 10000 }],
    });
    expect(await readListing(ch.publicClient, registry, hash)).toBeNull(); // a content hash is not a listing id
    const other = await ch.registerListing(
      ch.stranger,
      "chain-X",
      [ch.c2.account.address, ch.c3.account.address],
      [1, 9999],
    );
    expect(await listingIdsOfContent(ch.publicClient, registry, hash)).toEqual([X, other]);
    expect(await listingIdsOfContent(ch.publicClient, registry, contentHashOf("nothing"))).toEqual([]);
    await ch.wait(ch.as(ch.stranger).adapterRegistry.write.retire([other]));
    const retired = await readListing(ch.publicClient, registry, other);
    expect(retired).toMatchObject({
      live: false,
      retired: true,
      contributors: [{ weightBps: 1 }, { weightBps: 9999 }],
    });
    expect(retired!.retiredAt).toBeGreaterThan(0n);
  });

  it("readDeposit and availableFor leave out an amount under a pending request", async () => {
    const escrow = ch.deployment.contracts.InferenceEscrow;
    const [payer, node] = [ch.payerC.account.address, ch.nodeA.account.address];
    expect(await readDeposit(ch.publicClient, escrow, payer, node)).toEqual({
      balance: 0n,
      available: 0n,
      withdrawal: null,
    });
    await ch.depositFor(ch.payerC, ch.nodeA, E(10));
    const r = await ch.wait(ch.as(ch.payerC).escrow.write.requestWithdraw([node, E(4)]));
    const t = (await ch.publicClient.getBlock({ blockNumber: r.blockNumber })).timestamp;
    expect(await readDeposit(ch.publicClient, escrow, payer, node)).toEqual({
      balance: E(10),
      available: E(6),
      withdrawal: { amount: E(4), availableAt: t + 86400n, expiresAt: t + 2n * 86400n },
    });
    expect(await availableFor(ch.publicClient, escrow, payer, node)).toBe(E(6));
    expect(await availableFor(ch.publicClient, escrow, payer, ch.nodeB.account.address)).toBe(0n);
  });

  it("findSettlement reconciles a settle by its hash, voucher by voucher; settlementHistory filters", async () => {
    const escrow = ch.deployment.contracts.InferenceEscrow;
    await ch.depositFor(ch.payerA, ch.nodeA, E(5));
    const ok = await ch.signed(ch.payerA, ch.nodeA, X, E(2));
    const poor = await ch.signed(ch.payerA, ch.nodeA, X, E(50)); // more than the deposit
    const { receipt } = await ch.settle(ch.nodeA, [poor, ok, ok]);
    const found = await findSettlement(ch.publicClient, escrow, receipt.transactionHash);
    expect(found).toMatchObject({ txHash: receipt.transactionHash, status: "success" });
    expect(found!.outcomes.map((o) => (o.kind === "settled" ? ["settled", o.amount] : ["skipped", o.reason]))).toEqual([
      ["skipped", "InsufficientFunds"],
      ["settled", E(2)],
      ["skipped", "NotGrowing"],
    ]);
    expect(found!.outcomes[1]).toMatchObject({
      node: ch.nodeA.account.address,
      payer: ch.payerA.account.address,
      listingId: X,
      cumulativeAmount: E(2),
    });
    expect(found!.totals).toEqual({ count: 1n, paid: E(2), protocolFee: E(0.1), contributorShare: E(0.4) });
    expect(await findSettlement(ch.publicClient, escrow, keccak256(toHex("never sent")))).toBeNull();
    // a settle that reverts on chain (the caller cannot settle): reverted, nothing paid or skipped
    const [reverted] = await ch.race({
      tipGwei: 1,
      send: (fees) => ch.as(ch.stranger).escrow.write.settle([[ok.voucher], [ok.signature]], fees),
    });
    expect(await findSettlement(ch.publicClient, escrow, reverted.transactionHash)).toMatchObject({
      status: "reverted",
      outcomes: [],
      totals: null,
    });
    const history = await settlementHistory(ch.publicClient, escrow, {
      node: ch.nodeA.account.address,
      fromBlock: receipt.blockNumber,
    });
    expect(history).toEqual(found!.outcomes);
    const none = await settlementHistory(ch.publicClient, escrow, {
      node: ch.nodeA.account.address,
      payer: ch.payerB.account.address,
      fromBlock: 0n,
    });
    expect(none).toEqual([]);
  });
});

describe("keystore (ethers, scrypt)", () => {
  const fast = { scryptN: 1024 };

  it("create, load, wrong password", async () => {
    const ks = await createKeystore("correct horse", fast);
    expect(JSON.parse(ks.json).address.toLowerCase()).toBe(ks.address.slice(2).toLowerCase());
    const w = await loadKeystore(ks.json, "correct horse");
    expect(w.address).toBe(ks.address);
    expect(w.account.address).toBe(ks.address);
    await expect(loadKeystore(ks.json, "wrong")).rejects.toBeInstanceOf(KeystoreError);
    await expect(loadKeystore("{}", "x")).rejects.toBeInstanceOf(KeystoreError);
  });

  it("import a key and round-trip it through a 0600 file that is never overwritten", async () => {
    const key = keccak256(toHex("imported key"));
    const ks = await importKeystore(key, "pw", fast);
    expect(ks.address).toBe(privateKeyToAccount(key).address);
    await expect(importKeystore("0x1234", "pw", fast)).rejects.toBeInstanceOf(KeystoreError);
    const path = join(tmp, "wallets", "node.json");
    await writeKeystoreFile(path, ks);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const other = await importKeystore(keccak256(toHex("another key")), "pw", fast);
    await expect(writeKeystoreFile(path, other)).rejects.toMatchObject({ code: "EEXIST", path });
    const w = await readKeystoreFile(path, "pw"); // the first key, untouched
    expect(w.privateKey).toBe(key);
    // the default scrypt cost is what a real wallet file gets
    const real = await createKeystore("pw");
    const json = JSON.parse(real.json);
    expect((json.crypto ?? json.Crypto).kdfparams.n).toBe(131072);
  });
});

describe("deployment files and scripts/deploy.ts", () => {
  it("save and load a deployment per chain id", async () => {
    const dir = join(tmp, "deployments");
    const path = await saveDeployment(dir, ch.deployment);
    expect(path).toBe(join(dir, `${ch.chainId}.json`));
    expect(await loadDeployment(dir, ch.chainId)).toEqual(ch.deployment);
    // No file for that chain: the error names the file it looked for.
    await expect(loadDeployment(dir, 5)).rejects.toMatchObject({ code: "ENOENT", path: join(dir, "5.json") });
    // A file whose chain id is not the one asked for (copied or renamed) is refused, naming both.
    await writeFile(join(dir, "5.json"), await readFile(path));
    await expect(loadDeployment(dir, 5)).rejects.toThrow(`${join(dir, "5.json")}: chainId ${ch.chainId}, expected 5`);
  });

  it("deploys all four on the in-process network and writes <out>/inprocess/<chainId>.json", async () => {
    const out = join(tmp, "deploy-script");
    const { deployment, path } = await deploy({ out, params: { protocolFeeBps: 300, withdrawWindow: 7200n } });
    expect(path).toBe(join(out, "inprocess", "31337.json"));
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual(deployment);
    expect(deployment.params.protocolFeeBps).toBe(300);
    expect(deployment.params.withdrawWindow).toBe("7200");
    expect(Object.values(deployment.contracts)).toHaveLength(4);
  });
});
