// A contributor's side: per listing that names it, its weight, what its share of the listing's pool lets it claim
// now and what it claimed before; and the claim itself (one transaction for every listing with something to take).
import { getAddress, type Address, type Hex } from "viem";
import { getContracts, readListing, type ChainClients, type Deployment, type ReadClient } from "../chain/index.ts";
import { adapterRegistryAbi, inferenceEscrowAbi } from "../chain/generated/abi.ts";
import { ChainActionError, sendTx, type TxSummary } from "./transactions.ts";

export interface RewardLine {
  listingId: Hex;
  contentHash: Hex;
  registrant: Address;
  uri: string;
  weightBps: number;
  /** Wei the contributor can claim now. */
  claimable: bigint;
  /** Wei it claimed before (Claimed events). */
  claimed: bigint;
}

/** Every listing whose attribution names `contributor` (ListingAttribution events since the deployment). */
export async function rewardsOf(
  client: ReadClient,
  deployment: Deployment,
  contributor: Address,
): Promise<RewardLine[]> {
  const from = BigInt(deployment.blockNumber);
  const me = getAddress(contributor);
  const [attributions, claims] = await Promise.all([
    client.getContractEvents({
      address: deployment.contracts.AdapterRegistry,
      abi: adapterRegistryAbi,
      eventName: "ListingAttribution",
      fromBlock: from,
      strict: true,
    }),
    client.getContractEvents({
      address: deployment.contracts.InferenceEscrow,
      abi: inferenceEscrowAbi,
      eventName: "Claimed",
      args: { contributor: me },
      fromBlock: from,
      strict: true,
    }),
  ]);
  const claimed = new Map<string, bigint>();
  for (const c of claims) claimed.set(c.args.listingId, (claimed.get(c.args.listingId) ?? 0n) + c.args.amount);
  const mine = attributions.filter((a) => a.args.contributors.some((c) => getAddress(c) === me));
  const escrow = getContracts({ public: client }, deployment.contracts).escrow;
  return Promise.all(
    mine.map(async (a): Promise<RewardLine> => {
      const listingId = a.args.listingId;
      const [listing, claimable] = await Promise.all([
        readListing(client, deployment.contracts.AdapterRegistry, listingId),
        escrow.read.claimable([listingId, me]),
      ]);
      const index = a.args.contributors.findIndex((c) => getAddress(c) === me);
      return {
        listingId,
        contentHash: listing!.contentHash,
        registrant: listing!.registrant,
        uri: listing!.uri,
        weightBps: a.args.weightsBps[index],
        claimable,
        claimed: claimed.get(listingId) ?? 0n,
      };
    }),
  );
}

/** Claims the caller's share of every listing given; refuses when none has anything to claim. */
export async function claimRewards(
  clients: ChainClients,
  deployment: Deployment,
  listingIds: Hex[],
): Promise<{ transaction: TxSummary; amount: bigint }> {
  if (listingIds.length === 0) {
    throw new ChainActionError("nothing_to_claim", `${clients.wallet.account.address} has nothing to claim yet`);
  }
  const escrow = getContracts(clients, deployment.contracts).escrow;
  const token = getContracts(clients, deployment.contracts).token;
  const me = clients.wallet.account.address;
  const before = await token.read.balanceOf([me]);
  const transaction = await sendTx(clients, "claim", {
    simulate: () => escrow.simulate.claim([listingIds], { account: clients.wallet.account.address }),
    write: () => escrow.write.claim([listingIds], { account: clients.wallet.account, chain: clients.wallet.chain }),
  });
  return { transaction, amount: (await token.read.balanceOf([me])) - before };
}
