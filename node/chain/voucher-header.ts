// The x-openlora-voucher header: a signed voucher as JSON, {"payer","node","listingId","cumulativeAmount",
// "signature"} (cumulativeAmount a decimal string of wei), either as it is or base64url-encoded. The payer encodes
// it (node/client), the node decodes it (node/api). Only its form is checked here; the node checks what it says.
import { getAddress, isAddress, type Hex } from "viem";
import { isCanonicalSignature } from "./eip712.ts";
import type { Voucher } from "./voucher.ts";

export const VOUCHER_HEADER = "x-openlora-voucher";

export interface SignedVoucher {
  voucher: Voucher;
  signature: Hex;
}

/** Headers longer than this are not a voucher. */
export const MAX_VOUCHER_HEADER = 1024;

/** A header value that is not a signed voucher; the message names the problem. */
export class VoucherHeaderError extends Error {
  override name = "VoucherHeaderError";
}

function invalid(problem: string): VoucherHeaderError {
  return new VoucherHeaderError(`${VOUCHER_HEADER} ${problem}`);
}

/** The header's value for a signed voucher (plain JSON). */
export function encodeVoucherHeader({ voucher, signature }: SignedVoucher): string {
  return JSON.stringify({
    payer: voucher.payer,
    node: voucher.node,
    listingId: voucher.listingId,
    cumulativeAmount: voucher.cumulativeAmount.toString(),
    signature,
  });
}

/** The signed voucher a header value carries; throws VoucherHeaderError naming the bad field. */
export function parseVoucherHeader(value: string): SignedVoucher {
  if (value.length > MAX_VOUCHER_HEADER) throw invalid(`is longer than ${MAX_VOUCHER_HEADER} characters`);
  const text = value.trimStart().startsWith("{") ? value : Buffer.from(value, "base64url").toString("utf8");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalid("is neither JSON nor base64url-encoded JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalid("must be a JSON object");
  const { payer, node, listingId, cumulativeAmount, signature } = raw as Record<string, unknown>;
  for (const [name, v] of Object.entries({ payer, node })) {
    if (typeof v !== "string" || !isAddress(v, { strict: false })) throw invalid(`${name} must be an address`);
  }
  if (typeof listingId !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(listingId)) {
    throw invalid("listingId must be 0x and 64 hex digits");
  }
  if (typeof cumulativeAmount !== "string" || !/^\d{1,78}$/.test(cumulativeAmount)) {
    throw invalid("cumulativeAmount must be a decimal string of wei");
  }
  const amount = BigInt(cumulativeAmount);
  if (amount >= 2n ** 256n) throw invalid("cumulativeAmount exceeds uint256");
  if (typeof signature !== "string" || !isCanonicalSignature(signature)) {
    throw invalid("signature must be 65 bytes of hex with a low s and v of 27 or 28");
  }
  return {
    voucher: {
      payer: getAddress(payer as string),
      node: getAddress(node as string),
      listingId: listingId.toLowerCase() as Hex,
      cumulativeAmount: amount,
    },
    signature: signature as Hex,
  };
}
