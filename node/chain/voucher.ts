// EIP-712 vouchers for InferenceEscrow: the typed data, its digest, signing and verification.
// Matches the contract exactly (the tests settle TS-signed vouchers and compare digests with hashVoucher()).
import { hashTypedData, isAddressEqual, recoverTypedDataAddress, type Address, type Hex } from "viem";
import {
  eip712Domain,
  isCanonicalSignature,
  signTypedData,
  type Eip712Deployment,
  type TypedDataSigner,
} from "./eip712.ts";

/**
 * One payment channel's cumulative promise: the total `payer` owes `node` for the listing `listingId` so far. It
 * draws only on the deposit `payer` holds for `node`.
 */
export interface Voucher {
  payer: Address;
  node: Address;
  listingId: Hex; // bytes32: keccak256(abi.encode(registrant, contentHash)), see listing.ts
  cumulativeAmount: bigint;
}

/** What binds a voucher to one deployment: the chain and the escrow's address. */
export type EscrowDomain = Eip712Deployment;

export const VOUCHER_DOMAIN_NAME = "OpenLoRA Escrow";
// "2": vouchers name a listing (registrant, content hash), not a content hash; deposits are per (payer, node).
export const VOUCHER_DOMAIN_VERSION = "2";

export const voucherTypes = {
  Voucher: [
    { name: "payer", type: "address" },
    { name: "node", type: "address" },
    { name: "listingId", type: "bytes32" },
    { name: "cumulativeAmount", type: "uint256" },
  ],
} as const;

/** Either a local account (private key, keystore) or a wallet client with an account (JSON-RPC signer). */
export type VoucherSigner = TypedDataSigner;

/** The full EIP-712 domain of an escrow. */
export function voucherDomain(domain: EscrowDomain) {
  return eip712Domain(VOUCHER_DOMAIN_NAME, VOUCHER_DOMAIN_VERSION, domain);
}

function typedData(voucher: Voucher, domain: EscrowDomain) {
  return {
    domain: voucherDomain(domain),
    types: voucherTypes,
    primaryType: "Voucher",
    message: {
      payer: voucher.payer,
      node: voucher.node,
      listingId: voucher.listingId,
      cumulativeAmount: voucher.cumulativeAmount,
    },
  } as const;
}

/** The digest the payer signs; equals InferenceEscrow.hashVoucher(voucher) on that chain and escrow. */
export function hashVoucher(voucher: Voucher, domain: EscrowDomain): Hex {
  return hashTypedData(typedData(voucher, domain));
}

/** Sign `voucher` as its payer; returns the 65-byte signature the escrow's settle() takes. */
export async function signVoucher(signer: VoucherSigner, voucher: Voucher, domain: EscrowDomain): Promise<Hex> {
  return signTypedData(signer, typedData(voucher, domain));
}

/** The address that signed `voucher`, or null when the signature is malformed or not one the contract accepts. */
export async function recoverVoucherSigner(
  voucher: Voucher,
  signature: Hex,
  domain: EscrowDomain,
): Promise<Address | null> {
  if (!isCanonicalSignature(signature)) return null;
  try {
    return await recoverTypedDataAddress({ ...typedData(voucher, domain), signature });
  } catch {
    return null;
  }
}

/** True when `signature` is the payer's valid signature of `voucher` for this chain and escrow. */
export async function verifyVoucher(voucher: Voucher, signature: Hex, domain: EscrowDomain): Promise<boolean> {
  const signer = await recoverVoucherSigner(voucher, signature, domain);
  return signer !== null && isAddressEqual(signer, voucher.payer);
}

/** InferenceEscrow.SkipReason, as carried by the VoucherSkipped event. */
export const SkipReason = {
  None: 0,
  WrongNode: 1,
  UnknownListing: 2,
  NotGrowing: 3,
  BadSignature: 4,
  InsufficientFunds: 5,
} as const;
export type SkipReasonName = keyof typeof SkipReason;

/** The name of a SkipReason code from a VoucherSkipped event. */
export function skipReasonName(code: number): SkipReasonName {
  const entry = Object.entries(SkipReason).find(([, v]) => v === code);
  if (!entry) throw new RangeError(`unknown skip reason ${code}`);
  return entry[0] as SkipReasonName;
}
