// What each payer has available in escrow for this node, cached: read from the chain on first use, dropped when the
// escrow says it changed (deposits and withdrawals for this node, watched as events; settlements, told by the
// settlement job) and after a time to live. A refusal re-reads first, so a fresh deposit is never refused on a
// stale figure.
import type { Address } from "viem";
import { availableFor, inferenceEscrowAbi, type ReadClient } from "../../chain/index.ts";

const WATCHED = ["Deposited", "WithdrawRequested", "WithdrawCancelled", "Withdrawn"] as const;

export class EscrowBalances {
  readonly #client: ReadClient;
  readonly #escrow: Address;
  readonly #node: Address;
  readonly #ttlMs: number;
  readonly #max: number;
  /** Payer (lower-case) -> its figure and when it was read; oldest first (a Map keeps insertion order). */
  readonly #cache = new Map<string, { value: bigint; at: number }>();
  /** Bumped per payer by invalidate(): a read that started before does not store its (stale) figure. */
  readonly #epochs = new Map<string, number>();
  #unwatch: (() => void)[] = [];

  constructor(options: { client: ReadClient; escrow: Address; node: Address; ttlMs?: number; max?: number }) {
    this.#client = options.client;
    this.#escrow = options.escrow;
    this.#node = options.node;
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#max = options.max ?? 100_000;
  }

  /** The payer's available deposit for this node (cached); `fresh` reads the chain now. */
  async available(payer: Address, options: { fresh?: boolean } = {}): Promise<bigint> {
    const key = payer.toLowerCase();
    const cached = this.#cache.get(key);
    if (cached && !options.fresh && Date.now() - cached.at < this.#ttlMs) return cached.value;
    const epoch = this.#epochs.get(key) ?? 0;
    const value = await availableFor(this.#client, this.#escrow, payer, this.#node);
    if ((this.#epochs.get(key) ?? 0) === epoch) {
      this.#cache.delete(key);
      this.#cache.set(key, { value, at: Date.now() });
      if (this.#cache.size > this.#max) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return value;
  }

  invalidate(payer: Address): void {
    const key = payer.toLowerCase();
    this.#cache.delete(key);
    this.#epochs.set(key, (this.#epochs.get(key) ?? 0) + 1);
  }

  /** Watches the escrow's deposit and withdrawal events for this node; each drops its payer's figure. */
  watch(pollingIntervalMs = 1_000): void {
    for (const eventName of WATCHED) {
      this.#unwatch.push(
        this.#client.watchContractEvent({
          address: this.#escrow,
          abi: inferenceEscrowAbi,
          eventName,
          args: { node: this.#node },
          pollingInterval: pollingIntervalMs,
          onLogs: (logs) => {
            for (const log of logs) {
              const payer = (log.args as { payer?: Address }).payer;
              if (payer) this.invalidate(payer);
            }
          },
          // A failed poll leaves the cache to its time to live.
          onError: () => {},
        }),
      );
    }
  }

  stop(): void {
    for (const unwatch of this.#unwatch) unwatch();
    this.#unwatch = [];
  }
}
