// The x-openlora-voucher header. Its codec lives in node/chain (the client SDK encodes what the node decodes);
// here a malformed header becomes the API's 400, naming the header.
import {
  encodeVoucherHeader,
  parseVoucherHeader as decodeVoucherHeader,
  VOUCHER_HEADER,
  VoucherHeaderError,
  type SignedVoucher,
} from "../../chain/index.ts";
import { ApiError } from "../errors.ts";

export { encodeVoucherHeader, type SignedVoucher };

export function parseVoucherHeader(value: string): SignedVoucher {
  try {
    return decodeVoucherHeader(value);
  } catch (error) {
    if (error instanceof VoucherHeaderError) {
      throw new ApiError(400, "voucher_invalid", error.message, { param: VOUCHER_HEADER });
    }
    throw error;
  }
}
