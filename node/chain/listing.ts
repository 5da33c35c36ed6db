// Listings in AdapterRegistry: (registrant, content hash) with a fixed attribution. The listing id is what vouchers,
// channels and contributor pools name; the content hash is what the engine stores and peers send and verify.
// Nodes serve a listing while it is live; a retired listing still settles what was signed for it.
import { encodeAbiParameters, getAddress, keccak256, zeroAddress, type Address, type Hex } from "viem";
import { adapterRegistryAbi } from "./generated/abi.ts";
import type { ReadClient } from "./read-client.ts";

/** One contributor of a listing and its weight in basis points (the weights of a listing sum to 10000). */
export interface Contribution {
  contributor: Address;
  weightBps: number;
}

/** Everything AdapterRegistry holds about a listing. */
export interface ListingView {
  listingId: Hex;
  registrant: Address;
  /** sha256 of the adapter's canonical encoding: what a fetch must hash to. */
  contentHash: Hex;
  baseModelId: Hex;
  rank: number;
  /** Length in bytes of the canonical encoding: what a fetch must deliver, exactly. */
  size: number;
  uri: string;
  registeredAt: bigint;
  /** Registered and not retired: nodes may serve it and payers sign for it. */
  live: boolean;
  retired: boolean;
  /** Block timestamp of the retirement, 0n while live. */
  retiredAt: bigint;
  contributors: Contribution[];
}

/** keccak256(abi.encode(registrant, contentHash)): the id AdapterRegistry gives that registrant's listing. */
export function listingIdOf(registrant: Address, contentHash: Hex): Hex {
  return keccak256(encodeAbiParameters([{ type: "address" }, { type: "bytes32" }], [registrant, contentHash]));
}

/** The listing `listingId` with its attribution, or null when no such listing is registered. */
export async function readListing(client: ReadClient, registry: Address, listingId: Hex): Promise<ListingView | null> {
  const [l, [contributors, weights]] = await Promise.all([
    client.readContract({ address: registry, abi: adapterRegistryAbi, functionName: "listing", args: [listingId] }),
    client.readContract({
      address: registry,
      abi: adapterRegistryAbi,
      functionName: "contributorsOf",
      args: [listingId],
    }),
  ]);
  if (l.registrant === zeroAddress) return null;
  return {
    listingId,
    registrant: getAddress(l.registrant),
    contentHash: l.contentHash,
    baseModelId: l.baseModelId,
    rank: l.rank,
    // uint64 on chain; a size beyond 2^53 bytes cannot be fetched anyway, and then matches no real transfer
    size: Number(l.size),
    uri: l.uri,
    registeredAt: l.registeredAt,
    live: !l.retired,
    retired: l.retired,
    retiredAt: l.retiredAt,
    contributors: contributors.map((c, i) => ({ contributor: getAddress(c), weightBps: weights[i] })),
  };
}

/**
 * The ids of every listing of `contentHash` (any registrant, live or retired), oldest first, from the
 * ListingRegistered events since `fromBlock` (the registry's deployment block saves scanning the whole chain).
 */
export async function listingIdsOfContent(
  client: ReadClient,
  registry: Address,
  contentHash: Hex,
  fromBlock: bigint = 0n,
): Promise<Hex[]> {
  const logs = await client.getContractEvents({
    address: registry,
    abi: adapterRegistryAbi,
    eventName: "ListingRegistered",
    args: { contentHash },
    fromBlock,
    strict: true,
  });
  return logs.map((l) => l.args.listingId);
}
