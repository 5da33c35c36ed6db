// EIP-712 signatures of announcements by the operator's wallet. The domain binds them to one deployment (chain
// id and NodeRegistry address), so an announcement for one network is void on another.
//
// Verification hashes the typed data with a hand-written encoder for this one fixed type instead of viem's
// generic hashTypedData: every node re-verifies every announcement at every hop, and the generic encoder takes
// ~60 ms for 500 adapters where this one takes a few. The tests hold both to the same digest.
import { bytesToHex, hexToBytes, keccak256, recoverAddress, stringToBytes, type Address, type Hex } from "viem";
import {
  eip712Domain,
  isCanonicalSignature,
  signerAddress,
  signTypedData,
  type Eip712Deployment,
  type TypedDataSigner,
} from "../chain/eip712.ts";
import type { AnnouncementBody } from "./announcement.ts";

export const ANNOUNCEMENT_DOMAIN_NAME = "OpenLoRA Announcement";
// "2": each adapter entry names the listings served.
export const ANNOUNCEMENT_DOMAIN_VERSION = "2";

/** What binds announcements to one deployment; the verifying contract is the NodeRegistry (it decides who may announce). */
export type AnnouncementDomain = Eip712Deployment;

export const announcementTypes = {
  Announcement: [
    { name: "v", type: "uint16" },
    { name: "peerId", type: "string" },
    { name: "operator", type: "address" },
    { name: "multiaddrs", type: "string[]" },
    { name: "api", type: "string" },
    { name: "adapters", type: "AdapterEntry[]" },
    { name: "pricePerToken", type: "uint256" },
    { name: "queueDepth", type: "uint32" },
    { name: "freeSlots", type: "uint32" },
    { name: "ts", type: "uint64" },
    { name: "seq", type: "uint64" },
  ],
  AdapterEntry: [
    { name: "id", type: "bytes32" },
    { name: "tier", type: "string" },
    { name: "listings", type: "bytes32[]" },
  ],
} as const;

export type AnnouncementSigner = TypedDataSigner;
export { signerAddress };

export function announcementDomain(domain: AnnouncementDomain) {
  return eip712Domain(ANNOUNCEMENT_DOMAIN_NAME, ANNOUNCEMENT_DOMAIN_VERSION, domain);
}

/** The typed data viem signs (and hashTypedData hashes): the body with its integers as bigints. */
export function announcementTypedData(body: AnnouncementBody, domain: AnnouncementDomain) {
  return {
    domain: announcementDomain(domain),
    types: announcementTypes,
    primaryType: "Announcement",
    message: {
      v: body.v,
      peerId: body.peerId,
      operator: body.operator,
      multiaddrs: body.multiaddrs,
      api: body.api,
      adapters: body.adapters.map((a) => ({ id: a.id, tier: a.tier, listings: a.listings })),
      pricePerToken: body.pricePerToken,
      queueDepth: body.queueDepth,
      freeSlots: body.freeSlots,
      ts: BigInt(body.ts),
      seq: BigInt(body.seq),
    },
  } as const;
}

export async function signAnnouncement(
  signer: AnnouncementSigner,
  body: AnnouncementBody,
  domain: AnnouncementDomain,
): Promise<Hex> {
  const typed = announcementTypedData(body, domain);
  return (await signTypedData(signer, typed)).toLowerCase() as Hex;
}

// ---- the EIP-712 digest, by hand -------------------------------------------------------------------------------

const encodeType = (name: keyof typeof announcementTypes): string =>
  `${name}(${announcementTypes[name].map((f) => `${f.type} ${f.name}`).join(",")})`;
const k = (bytes: Uint8Array): Uint8Array => keccak256(bytes, "bytes");
const ANNOUNCEMENT_TYPEHASH = k(stringToBytes(encodeType("Announcement") + encodeType("AdapterEntry")));
const ADAPTER_ENTRY_TYPEHASH = k(stringToBytes(encodeType("AdapterEntry")));
const DOMAIN_TYPEHASH = k(
  stringToBytes("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
);
const hashString = (s: string): Uint8Array => k(stringToBytes(s));
// The tier strings are three: hash them once.
const TIER_HASHES = new Map(["gpu", "host", "disk"].map((t) => [t, hashString(t)]));

/** Big-endian 32-byte word of an unsigned integer. */
function word(value: bigint | number): Uint8Array {
  let v = BigInt(value);
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0 && v > 0n; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function addressWord(address: Address): Uint8Array {
  const out = new Uint8Array(32);
  out.set(hexToBytes(address), 12);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const domainSeparators = new Map<string, Uint8Array>();

function domainSeparator(domain: AnnouncementDomain): Uint8Array {
  const key = `${domain.chainId}:${domain.verifyingContract.toLowerCase()}`;
  let sep = domainSeparators.get(key);
  if (!sep) {
    sep = k(
      concat([
        DOMAIN_TYPEHASH,
        hashString(ANNOUNCEMENT_DOMAIN_NAME),
        hashString(ANNOUNCEMENT_DOMAIN_VERSION),
        word(BigInt(domain.chainId)),
        addressWord(domain.verifyingContract),
      ]),
    );
    domainSeparators.set(key, sep);
  }
  return sep;
}

/** The EIP-712 digest of an announcement body: equal to viem's hashTypedData(announcementTypedData(...)). */
export function hashAnnouncement(body: AnnouncementBody, domain: AnnouncementDomain): Hex {
  const adapters = k(
    concat(
      body.adapters.map((a) =>
        k(
          concat([
            ADAPTER_ENTRY_TYPEHASH,
            hexToBytes(a.id),
            TIER_HASHES.get(a.tier) ?? hashString(a.tier),
            k(concat(a.listings.map((l) => hexToBytes(l)))), // bytes32[]: the hash of the words, in order
          ]),
        ),
      ),
    ),
  );
  const struct = k(
    concat([
      ANNOUNCEMENT_TYPEHASH,
      word(body.v),
      hashString(body.peerId),
      addressWord(body.operator),
      k(concat(body.multiaddrs.map(hashString))),
      hashString(body.api),
      adapters,
      word(body.pricePerToken),
      word(body.queueDepth),
      word(body.freeSlots),
      word(body.ts),
      word(body.seq),
    ]),
  );
  return bytesToHex(k(concat([Uint8Array.of(0x19, 0x01), domainSeparator(domain), struct])));
}

/** The address that signed the body, or null when the signature is malformed or malleable. */
export async function recoverAnnouncementSigner(
  body: AnnouncementBody,
  sig: Hex,
  domain: AnnouncementDomain,
): Promise<Address | null> {
  if (!isCanonicalSignature(sig)) return null; // like the escrow's vouchers: 65 bytes, low s
  try {
    return await recoverAddress({ hash: hashAnnouncement(body, domain), signature: sig });
  } catch {
    return null;
  }
}
