// node/chain/voucher.ts without a chain: the digest rebuilt by hand from the EIP-712 definition (domain separator,
// struct hash, 0x1901 prefix) rather than through viem's typed-data encoder; signatures that verify only for the
// payer, the deployment and the exact amounts they were made for; malformed and malleable signatures refused;
// the skip reasons by code. (chain.test.ts holds the same digest to the contract's hashVoucher on a chain.)
import { describe, expect, it } from "vitest";
import { concat, encodeAbiParameters, keccak256, toHex, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  hashVoucher,
  recoverVoucherSigner,
  signVoucher,
  skipReasonName,
  SkipReason,
  verifyVoucher,
  voucherDomain,
  type Voucher,
} from "../../node/chain/voucher.ts";

const domain = { chainId: 31337, verifyingContract: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512" } as const;
const payer = privateKeyToAccount(generatePrivateKey());
const other = privateKeyToAccount(generatePrivateKey());
const voucher: Voucher = {
  payer: payer.address,
  node: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  listingId: keccak256(toHex("listing 1")),
  cumulativeAmount: 123_456_789_000_000_000_000n,
};

/** EIP-712 by its definition: keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(voucher)). */
function digestByHand(v: Voucher, d: { chainId: number; verifyingContract: Hex }): Hex {
  const domainType = keccak256(
    toHex("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
  );
  const separator = keccak256(
    encodeAbiParameters(
      [{ type: "bytes32" }, { type: "bytes32" }, { type: "bytes32" }, { type: "uint256" }, { type: "address" }],
      [domainType, keccak256(toHex("OpenLoRA Escrow")), keccak256(toHex("2")), BigInt(d.chainId), d.verifyingContract],
    ),
  );
  const voucherType = keccak256(
    toHex("Voucher(address payer,address node,bytes32 listingId,uint256 cumulativeAmount)"),
  );
  const struct = keccak256(
    encodeAbiParameters(
      [{ type: "bytes32" }, { type: "address" }, { type: "address" }, { type: "bytes32" }, { type: "uint256" }],
      [voucherType, v.payer, v.node, v.listingId, v.cumulativeAmount],
    ),
  );
  return keccak256(concat(["0x1901", separator, struct]));
}

describe("voucher digest", () => {
  it("is the EIP-712 digest of (payer, node, listingId, cumulativeAmount) under the escrow's domain", () => {
    expect(voucherDomain(domain)).toEqual({
      name: "OpenLoRA Escrow",
      version: "2",
      chainId: 31337n,
      verifyingContract: domain.verifyingContract,
    });
    expect(hashVoucher(voucher, domain)).toBe(digestByHand(voucher, domain));
    expect(hashVoucher({ ...voucher, cumulativeAmount: 0n }, domain)).toBe(
      digestByHand({ ...voucher, cumulativeAmount: 0n }, domain),
    );
  });

  it("changes with every field and with the deployment", () => {
    const base = hashVoucher(voucher, domain);
    const variants: Voucher[] = [
      { ...voucher, payer: other.address },
      { ...voucher, node: other.address },
      { ...voucher, listingId: keccak256(toHex("listing 2")) },
      { ...voucher, cumulativeAmount: voucher.cumulativeAmount + 1n },
    ];
    for (const v of variants) expect(hashVoucher(v, domain)).not.toBe(base);
    expect(hashVoucher(voucher, { ...domain, chainId: 1 })).not.toBe(base);
    expect(hashVoucher(voucher, { ...domain, verifyingContract: other.address })).not.toBe(base);
  });
});

describe("voucher signatures", () => {
  it("verify for the payer, on the deployment, for the exact voucher signed", async () => {
    const signature = await signVoucher(payer, voucher, domain);
    expect(await recoverVoucherSigner(voucher, signature, domain)).toBe(payer.address);
    expect(await verifyVoucher(voucher, signature, domain)).toBe(true);
    expect(
      await verifyVoucher({ ...voucher, cumulativeAmount: voucher.cumulativeAmount * 2n }, signature, domain),
    ).toBe(false);
    expect(await verifyVoucher(voucher, signature, { ...domain, chainId: 1 })).toBe(false);
    expect(await verifyVoucher(voucher, signature, { ...domain, verifyingContract: other.address })).toBe(false);
    // Signed by someone else for the payer's channel: recovers that someone, and does not verify.
    const forged = await signVoucher(other, voucher, domain);
    expect(await recoverVoucherSigner(voucher, forged, domain)).toBe(other.address);
    expect(await verifyVoucher(voucher, forged, domain)).toBe(false);
    // The payer's address in another letter case is the same payer.
    expect(await verifyVoucher({ ...voucher, payer: payer.address.toLowerCase() as Hex }, signature, domain)).toBe(
      true,
    );
  });

  it("refuses malformed and malleable signatures (what the contract refuses)", async () => {
    const signature = await signVoucher(payer, voucher, domain);
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const s = BigInt(`0x${signature.slice(66, 130)}`);
    const v = Number.parseInt(signature.slice(130), 16);
    // (r, n - s, v flipped) recovers the same key but is the high-s twin OpenZeppelin rejects.
    const twin =
      `${signature.slice(0, 66)}${(n - s).toString(16).padStart(64, "0")}${(v === 27 ? 28 : 27).toString(16)}` as Hex;
    for (const bad of [
      twin,
      signature.slice(0, 130) as Hex,
      `${signature.slice(0, 130)}1b00` as Hex,
      `${signature.slice(0, 130)}00` as Hex,
      "0x" as Hex,
      `0x${"zz".repeat(65)}` as Hex,
    ]) {
      expect(await recoverVoucherSigner(voucher, bad, domain), bad).toBeNull();
      expect(await verifyVoucher(voucher, bad, domain)).toBe(false);
    }
    // A canonical-looking signature that recovers no key at all (r = 0) is refused, not thrown.
    const zeroR = `0x${"00".repeat(32)}${signature.slice(66)}` as Hex;
    expect(await recoverVoucherSigner(voucher, zeroR, domain)).toBeNull();
    expect(await verifyVoucher(voucher, zeroR, domain)).toBe(false);
  });
});

describe("skip reasons", () => {
  it("name the contract's SkipReason codes, and refuse unknown ones", () => {
    expect(Object.entries(SkipReason)).toEqual([
      ["None", 0],
      ["WrongNode", 1],
      ["UnknownListing", 2],
      ["NotGrowing", 3],
      ["BadSignature", 4],
      ["InsufficientFunds", 5],
    ]);
    for (const [name, code] of Object.entries(SkipReason)) expect(skipReasonName(code)).toBe(name);
    expect(() => skipReasonName(6)).toThrow("unknown skip reason 6");
    expect(() => skipReasonName(-1)).toThrow("unknown skip reason -1");
  });
});
