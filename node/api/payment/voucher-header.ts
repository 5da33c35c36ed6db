// The x-openlora-voucher header: a signed voucher as JSON, {"payer","node","listingId","cumulativeAmount",
// "signature"} (cumulativeAmount a decimal string of wei), either as it is or base64url-encoded. Only its form is
// checked here; the gate checks what it says.
import { getAddress, isAddress, type Hex } from "viem";
import { isCanonicalSignature, type Voucher } from "../../chain/index.ts";
import { ApiError } from "../errors.ts";

export interface SignedVoucher {
  voucher: Voucher;
  signature: Hex;
}

/** Headers longer than this are not a voucher. */
const MAX_HEADER = 1024;

function invalid(problem: string): ApiError {
  return new ApiError(400, "voucher_invalid", `x-openlora-voucher ${problem}`, { param: "x-openlora-voucher" });
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

export function parseVoucherHeader(value: string): SignedVoucher {
  if (value.length > MAX_HEADER) throw invalid(`is longer than ${MAX_HEADER} characters`);
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
