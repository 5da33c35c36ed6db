// What the node knows of each payment channel (payer, this node, listing) while it serves: the highest voucher it
// accepted, what finished requests consumed, what requests in flight reserved, and what the chain settled. It
// starts from the ledger and is changed only in synchronous steps, so concurrent requests on one channel see each
// other's reservations and never spend the same voucher growth twice.
import type { Address, Hex } from "viem";
import type { Ledger } from "../../ledger/index.ts";
import type { SignedVoucher } from "./voucher-header.ts";

export interface ChannelEntry {
  payer: Address;
  listingId: Hex;
  /** The highest voucher accepted on the channel (null: none yet). */
  accepted: SignedVoucher | null;
  /** Wei charged for finished requests. */
  consumed: bigint;
  /** Wei held for requests in flight (their price x (prompt + max_tokens)). */
  reserved: bigint;
  /** The cumulative amount the escrow has paid on the channel. */
  settled: bigint;
}

const keyOf = (payer: string, listingId: string): string => `${payer.toLowerCase()}!${listingId.toLowerCase()}`;

export class ChannelBook {
  readonly #channels = new Map<string, ChannelEntry>();
  /** Per payer (lower-case): the keys of its channels. */
  readonly #byPayer = new Map<string, Set<string>>();

  /** The channels of `node` the ledger holds. */
  static async open(ledger: Ledger, node: Address): Promise<ChannelBook> {
    const book = new ChannelBook();
    for (const c of await ledger.channels()) {
      if (c.node.toLowerCase() !== node.toLowerCase()) continue;
      const entry = book.get(c.payer, c.listingId);
      entry.accepted = {
        voucher: {
          payer: c.latest.payer,
          node: c.latest.node,
          listingId: c.latest.listingId,
          cumulativeAmount: c.latest.cumulativeAmount,
        },
        signature: c.latest.signature,
      };
      entry.consumed = c.consumed;
      entry.settled = c.settled;
    }
    return book;
  }

  /** The channel's entry, created empty when new. */
  get(payer: Address, listingId: Hex): ChannelEntry {
    const key = keyOf(payer, listingId);
    let entry = this.#channels.get(key);
    if (!entry) {
      entry = { payer, listingId, accepted: null, consumed: 0n, reserved: 0n, settled: 0n };
      this.#channels.set(key, entry);
      const payerKey = payer.toLowerCase();
      const keys = this.#byPayer.get(payerKey) ?? new Set<string>();
      keys.add(key);
      this.#byPayer.set(payerKey, keys);
    }
    return entry;
  }

  /** What the node may still claim from `payer`'s deposit: every channel's accepted voucher beyond its settlement. */
  outstanding(payer: Address): bigint {
    let total = 0n;
    for (const key of this.#byPayer.get(payer.toLowerCase()) ?? []) total += unsettledOf(this.#channels.get(key)!);
    return total;
  }

  /** The escrow paid up to `cumulativeAmount` on a channel. */
  settled(payer: Address, listingId: Hex, cumulativeAmount: bigint): void {
    const entry = this.get(payer, listingId);
    if (cumulativeAmount > entry.settled) entry.settled = cumulativeAmount;
  }
}

export function unsettledOf(entry: ChannelEntry): bigint {
  const accepted = entry.accepted?.voucher.cumulativeAmount ?? 0n;
  return accepted > entry.settled ? accepted - entry.settled : 0n;
}
