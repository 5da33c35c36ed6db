// The payer's spending limits: at most `perRequest` wei for one request's most (price x (prompt + max_tokens)),
// and at most `perHour` wei over any hour, counting what receipts charged, what requests without a receipt may
// still be settled for, and what requests in flight hold. A request that would pass a limit is refused before any
// voucher is signed.
import { formatUnits } from "viem";
import { SpendingLimitError } from "./errors.ts";
import type { PayerState } from "./payer-state.ts";

export interface SpendingLimits {
  /** Wei one request may cost at most. */
  perRequest?: bigint;
  /** Wei all requests of the last hour may cost together. */
  perHour?: bigint;
}

export interface SpendingView {
  limits: SpendingLimits;
  /** Charged or exposed during the last hour (from the payer's state file: every process of this payer). */
  lastHour: bigint;
  /** Held by this process's requests in flight. */
  held: bigint;
}

const HOUR_MS = 3600_000;
const open = (wei: bigint): string => `${formatUnits(wei, 18)} OPEN`;

export class SpendingGuard {
  readonly limits: SpendingLimits;
  readonly #state: PayerState;
  #held = 0n;

  constructor(limits: SpendingLimits, state: PayerState) {
    this.limits = limits;
    this.#state = state;
  }

  /** Reserves `maxCost` for a request, or throws SpendingLimitError; call the returned function when it ends. */
  async hold(maxCost: bigint): Promise<() => void> {
    const { perRequest, perHour } = this.limits;
    if (perRequest !== undefined && maxCost > perRequest) {
      throw new SpendingLimitError(
        "per_request",
        maxCost,
        perRequest,
        `the request may cost ${open(maxCost)}, over the per-request limit of ${open(perRequest)}`,
      );
    }
    if (perHour !== undefined) {
      const used = (await this.#state.spentSince(Date.now() - HOUR_MS)) + this.#held;
      if (used + maxCost > perHour) {
        throw new SpendingLimitError(
          "per_hour",
          used + maxCost,
          perHour,
          `the last hour's spending (${open(used)}) and this request's most (${open(maxCost)}) ` +
            `pass the hourly limit of ${open(perHour)}`,
        );
      }
    }
    this.#held += maxCost;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#held -= maxCost;
    };
  }

  async view(): Promise<SpendingView> {
    return { limits: this.limits, lastHour: await this.#state.spentSince(Date.now() - HOUR_MS), held: this.#held };
  }
}
