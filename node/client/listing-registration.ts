// Listing an adapter in AdapterRegistry: its content hash (the id `openlora adapter inspect` prints), base model,
// rank and canonical size, a uri, and the attribution: contributors with weights in basis points summing to
// 10000. The attribution is checked here first, so a mistake is named before a transaction is sent.
import { getAddress, isAddress, keccak256, toHex, type Address, type Hex } from "viem";
import { getContracts, listingIdOf, type ChainClients, type Contribution, type Deployment } from "../chain/index.ts";
import { loadPeftAdapter, type ModelIdentity } from "../engine/index.ts";
import { ChainActionError, sendTx, type TxSummary } from "./transactions.ts";

/** AdapterRegistry.MAX_CONTRIBUTORS. */
export const MAX_CONTRIBUTORS = 64;
export const FULL_WEIGHT_BPS = 10_000;

export class AttributionError extends ChainActionError {
  override name = "AttributionError";
  constructor(message: string) {
    super("invalid_attribution", message);
  }
}

/** Checks an attribution as AdapterRegistry will: 1..64 distinct non-zero addresses, weights summing to 10000. */
export function checkAttribution(contributions: Contribution[]): Contribution[] {
  if (contributions.length === 0) throw new AttributionError("an adapter needs at least one contributor");
  if (contributions.length > MAX_CONTRIBUTORS) {
    throw new AttributionError(`${contributions.length} contributors, at most ${MAX_CONTRIBUTORS}`);
  }
  const seen = new Set<string>();
  let sum = 0;
  for (const { contributor, weightBps } of contributions) {
    if (!isAddress(contributor, { strict: false }) || /^0x0{40}$/i.test(contributor)) {
      throw new AttributionError(`"${contributor}" is not a contributor address`);
    }
    const key = contributor.toLowerCase();
    if (seen.has(key)) throw new AttributionError(`contributor ${contributor} is named twice`);
    seen.add(key);
    if (!Number.isInteger(weightBps) || weightBps < 1 || weightBps > FULL_WEIGHT_BPS) {
      throw new AttributionError(
        `the weight of ${contributor} must be a whole number of basis points in 1..10000, got ${weightBps}`,
      );
    }
    sum += weightBps;
  }
  if (sum !== FULL_WEIGHT_BPS) {
    throw new AttributionError(
      `the weights sum to ${sum} basis points; they must sum to exactly ${FULL_WEIGHT_BPS} (100%)`,
    );
  }
  return contributions.map((c) => ({ contributor: getAddress(c.contributor), weightBps: c.weightBps }));
}

/** The id a listing gives its base model: keccak256 of the model's name (as the engine names it). */
export function baseModelIdOf(modelName: string): Hex {
  return keccak256(toHex(modelName));
}

/** What a listing says about its adapter, read from a PEFT folder. */
export interface AdapterFacts {
  contentHash: Hex;
  baseModel: string;
  rank: number;
  /** Bytes of the canonical encoding. */
  size: number;
}

/**
 * The adapter's facts. Its content hash is that of the canonical encoding a node serving `model` makes of the
 * folder (the model's architecture family and q/k order are part of it); without a model, the encoding for a
 * plain LLaMA in llama2.c's basis (the demo adapters of stories260K).
 */
export async function adapterFacts(dir: string, model?: ModelIdentity): Promise<AdapterFacts> {
  const expect = model && { config: model.config, name: model.name, qkBasis: model.qkBasis, maxRank: Infinity };
  const { adapter, encoded } = await loadPeftAdapter(dir, expect);
  return { contentHash: adapter.id as Hex, baseModel: adapter.baseModel, rank: adapter.rank, size: encoded.length };
}

export interface RegisteredListing {
  listingId: Hex;
  registrant: Address;
  transaction: TxSummary;
}

/** Registers the caller's listing of an adapter with its attribution. */
export async function registerListing(
  clients: ChainClients,
  deployment: Deployment,
  facts: AdapterFacts,
  contributions: Contribution[],
  uri: string,
): Promise<RegisteredListing> {
  const attribution = checkAttribution(contributions);
  const registry = getContracts(clients, deployment.contracts).adapterRegistry;
  const registrant = getAddress(clients.wallet.account.address);
  const listingId = listingIdOf(registrant, facts.contentHash);
  const existing = await registry.read.isRegistered([listingId]);
  if (existing) {
    throw new ChainActionError(
      "listing_exists",
      `${registrant} already listed adapter ${facts.contentHash} (listing ${listingId})`,
    );
  }
  const args = [
    facts.contentHash,
    baseModelIdOf(facts.baseModel),
    facts.rank,
    BigInt(facts.size),
    uri,
    attribution.map((c) => c.contributor),
    attribution.map((c) => c.weightBps),
  ] as const;
  const transaction = await sendTx(clients, "register", {
    simulate: () => registry.simulate.register(args, { account: clients.wallet.account.address }),
    write: () => registry.write.register(args, { account: clients.wallet.account, chain: clients.wallet.chain }),
  });
  return { listingId, registrant, transaction };
}
