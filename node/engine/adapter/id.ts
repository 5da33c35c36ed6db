// The adapter id: "0x" + the sha256 of the adapter's canonical encoding, lower-case hex (canonical.ts). It names
// the bytes, so every tier, peer and chain listing that holds an id can check the bytes against it.
import { createHash } from "node:crypto";

/** An adapter's content hash, "0x" + 64 lower-case hex digits. */
export type AdapterId = `0x${string}`;

const ADAPTER_ID = /^0x[0-9a-f]{64}$/;

/** True when `value` is an adapter id in its one accepted spelling. */
export function isAdapterId(value: unknown): value is AdapterId {
  return typeof value === "string" && ADAPTER_ID.test(value);
}

/** The id of canonical adapter bytes. */
export function adapterIdOf(encoded: Uint8Array): AdapterId {
  return `0x${createHash("sha256").update(encoded).digest("hex")}`;
}

/**
 * Reads an id written by a person (upper-case hex or no "0x" accepted); throws a TypeError naming `what` and
 * the value when it is not 32 bytes of hex.
 */
export function parseAdapterId(value: string, what = "adapter id"): AdapterId {
  const hex = value.trim().toLowerCase().replace(/^0x/, "");
  const id = `0x${hex}`;
  if (!isAdapterId(id))
    throw new TypeError(`${what} must be 0x followed by 64 hex digits (a sha256), got ${JSON.stringify(value)}`);
  return id;
}
