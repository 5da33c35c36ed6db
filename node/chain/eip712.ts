// What every EIP-712 signature of the project shares (escrow vouchers, node announcements, node receipts): who
// signs, what binds a signature to one deployment, and which signature encodings the contracts accept.
import type { Account, Address, Chain, Hex, LocalAccount, Transport, TypedDataDefinition, WalletClient } from "viem";

/** A local account (private key, keystore) or a wallet client with an account (JSON-RPC signer). */
export type TypedDataSigner = LocalAccount | WalletClient<Transport, Chain | undefined, Account>;

/** What binds a signature to one deployment: the chain and the contract that verifies it. */
export interface Eip712Deployment {
  chainId: number | bigint;
  verifyingContract: Address;
}

/** The address a signer signs as. */
export function signerAddress(signer: TypedDataSigner): Address {
  return "account" in signer ? signer.account.address : signer.address;
}

/** The full EIP-712 domain of a named signature type on one deployment. */
export function eip712Domain(name: string, version: string, deployment: Eip712Deployment) {
  return {
    name,
    version,
    chainId: BigInt(deployment.chainId),
    verifyingContract: deployment.verifyingContract,
  } as const;
}

/** Signs typed data with either kind of signer; returns the 65-byte signature. */
export function signTypedData(signer: TypedDataSigner, data: TypedDataDefinition): Promise<Hex> {
  if ("account" in signer)
    return signer.signTypedData({ account: signer.account, ...data } as Parameters<typeof signer.signTypedData>[0]);
  return signer.signTypedData(data);
}

// secp256k1 order / 2: OpenZeppelin's ECDSA rejects signatures with a larger s (their malleable twins).
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

/** A 65-byte signature with a low s and v of 27 or 28: the only encoding the contracts (and the nodes) accept. */
export function isCanonicalSignature(signature: string): signature is Hex {
  if (!/^0x[0-9a-fA-F]{130}$/.test(signature)) return false;
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = Number.parseInt(signature.slice(130, 132), 16);
  return s <= HALF_N && (v === 27 || v === 28);
}
