// Paid mode: what a node adds to serve for money. Before anything loads, it checks that the chain is the
// deployment's and that the operator's stake is active and bound to this node's peer id (nothing is announced
// without); then the payment gate (vouchers, channels, escrow balances, receipts), the settlement job and the peer
// network run until stop.
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import type { Address, Chain, LocalAccount, Transport, WalletClient } from "viem";
import { getContracts, type ChainClients, type Deployment } from "../chain/index.ts";
import { OpenLoraError, type Engine } from "../engine/index.ts";
import type { Ledger, SettlementRecord } from "../ledger/index.ts";
import { loadOrCreatePeerKey, PeerNode, peerIdBytesHex, type PeerNodeOptions } from "../p2p/index.ts";
import { ChainEscrowSettler } from "./escrow-settler.ts";
import type { Logger } from "./log.ts";
import type { NodeMetrics } from "./metrics/node-metrics.ts";
import { ChannelBook } from "./payment/channel-book.ts";
import { EscrowBalances } from "./payment/escrow-balances.ts";
import { ListingCache } from "./payment/listings.ts";
import { VoucherGate } from "./payment/payment-gate.ts";
import { SettlementJob, type SettlementPolicy } from "./settlement.ts";

/** A public client, and a wallet client with the operator's local account (its keystore): it signs offline. */
export interface OperatorClients {
  public: ChainClients["public"];
  wallet: WalletClient<Transport, Chain | undefined, LocalAccount>;
}

export interface PaidModeOptions {
  clients: OperatorClients;
  deployment: Deployment;
  /** Wei per token, prompt and completion alike. */
  pricePerToken: bigint;
  settlement?: Partial<SettlementPolicy>;
  /** The peer network; null runs without one (no announcements, no fetching adapters from peers). */
  p2p: {
    /** The API URL announced to peers. Default: the URL the API listens on (set once it listens). */
    publicApi?: string;
    listen?: string[];
    bootstrap?: string[];
    timings?: PeerNodeOptions["timings"];
    colocationWhitelist?: string[];
  } | null;
  /** Escrow events are polled this often. Default 1 s. */
  eventPollMs?: number;
}

/** The stake is not active (or not bound to this node): the node does not start in paid mode. */
export class StakeError extends OpenLoraError {
  override name = "StakeError";
}

export class PaidMode {
  readonly operator: Address;
  readonly gate: VoucherGate;
  readonly settlement: SettlementJob;
  readonly peers: PeerNode | null;
  readonly #balances: EscrowBalances;

  private constructor(parts: {
    operator: Address;
    gate: VoucherGate;
    settlement: SettlementJob;
    peers: PeerNode | null;
    balances: EscrowBalances;
  }) {
    this.operator = parts.operator;
    this.gate = parts.gate;
    this.settlement = parts.settlement;
    this.peers = parts.peers;
    this.#balances = parts.balances;
  }

  /**
   * What must hold before the node loads anything: the chain is the deployment's, and the operator's stake is
   * active and (with a peer network) bound to this node's peer id, whose key is made now on a first start.
   */
  static async preflight(options: PaidModeOptions, dataDir: string): Promise<void> {
    const chainId = await options.clients.public.getChainId();
    if (chainId !== options.deployment.chainId) {
      throw new StakeError(
        "wrong_chain",
        `the chain's id is ${chainId}, the deployment's ${options.deployment.chainId}`,
      );
    }
    const peerId = options.p2p ? peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir)).toString() : null;
    await checkStake(options.clients, options.deployment, options.clients.wallet.account.address, peerId);
  }

  static async start(
    options: PaidModeOptions,
    parts: { engine: Engine; ledger: Ledger; dataDir: string; log: Logger; metrics: NodeMetrics },
  ): Promise<PaidMode> {
    const { clients, deployment } = options;
    const account = clients.wallet.account;
    const operator = account.address;
    const chainId = deployment.chainId;
    const peers = options.p2p
      ? await PeerNode.create({
          dataDir: parts.dataDir,
          listen: options.p2p.listen,
          bootstrap: options.p2p.bootstrap,
          chain: {
            client: clients.public,
            chainId,
            nodeRegistry: deployment.contracts.NodeRegistry,
            adapterRegistry: deployment.contracts.AdapterRegistry,
          },
          signer: account,
          engine: parts.engine,
          api: options.p2p.publicApi ?? "",
          pricePerToken: options.pricePerToken,
          timings: options.p2p.timings,
          colocationWhitelist: options.p2p.colocationWhitelist,
        })
      : null;
    try {
      const escrow = { chainId, verifyingContract: deployment.contracts.InferenceEscrow };
      const book = await ChannelBook.open(parts.ledger, operator);
      const balances = new EscrowBalances({ client: clients.public, escrow: escrow.verifyingContract, node: operator });
      const listings = new ListingCache({ client: clients.public, registry: deployment.contracts.AdapterRegistry });
      const gate = new VoucherGate({
        operator,
        signer: account,
        escrow,
        pricePerToken: options.pricePerToken,
        book,
        balances,
        listings,
      });
      const settlement = new SettlementJob({
        ledger: parts.ledger,
        settler: new ChainEscrowSettler(clients, escrow.verifyingContract),
        node: operator,
        policy: options.settlement,
        log: parts.log,
        onBatchDone: (batch) => settled(batch, book, balances, parts.metrics),
      });
      balances.watch(options.eventPollMs);
      await settlement.start(); // reconciles what a previous run left pending first
      await peers?.start();
      return new PaidMode({ operator, gate, settlement, peers, balances });
    } catch (error) {
      await peers?.stop().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Stops watching the escrow, settling and announcing; a batch in flight stays pending in the ledger for the next
   * start. The watchers go first and at once: their polling timers would keep the process alive if a later step
   * hung (a settlement pass waiting on an unresponsive chain). The other two stop side by side, neither waiting on
   * the other, and the first failure is thrown once both have ended.
   */
  async stop(): Promise<void> {
    this.#balances.stop();
    const results = await Promise.allSettled([this.settlement.stop(), this.peers?.stop()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }
}

/** Refuses to serve for money without an active stake bound to this node's peer id. */
async function checkStake(
  clients: OperatorClients,
  deployment: Deployment,
  operator: Address,
  peerId: string | null,
): Promise<void> {
  const registry = getContracts({ public: clients.public }, deployment.contracts).nodeRegistry;
  const [active, info] = await Promise.all([registry.read.isActive([operator]), registry.read.nodeOf([operator])]);
  const stakeHint = `openlora stake --amount <OPEN>${peerId ? ` --peer-id ${peerId}` : ""} --api <public URL>`;
  if (!active) {
    throw new StakeError("stake_inactive", `operator ${operator} has no active stake in NodeRegistry`, {
      hint: `stake first: ${stakeHint}`,
    });
  }
  if (peerId && info.peerId.toLowerCase() !== peerIdBytesHex(peerId).toLowerCase()) {
    throw new StakeError("stake_peer_mismatch", `the stake binds another peer id than this node's (${peerId})`, {
      hint: `bind it: ${stakeHint.replace("<OPEN>", "0")}`,
    });
  }
}

/** A settlement batch ended: channels paid move their settled mark, and their payers' balances are read anew. */
function settled(batch: SettlementRecord, book: ChannelBook, balances: EscrowBalances, metrics: NodeMetrics): void {
  if (batch.gasUsed !== null) metrics.settlementBatch(batch.gasUsed);
  batch.outcomes?.forEach((outcome, i) => {
    const v = batch.vouchers[i];
    if (outcome.status === "paid") book.settled(v.payer, v.listingId, v.cumulativeAmount);
    balances.invalidate(v.payer);
  });
}
