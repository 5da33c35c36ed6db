// What a payer must remember between requests and across restarts, per deployment and payer: for each channel
// (node, listing) the highest voucher it signed (its exposure: what the node could settle), the highest one the
// node showed it accepted, and the consumed total adopted from the node's last valid receipt; the spending of
// the last day (for the hourly limit); and the disputes (receipts that did not hold, kept as evidence). Amounts
// are wei, stored as decimal strings. One file: <dir>/payer-<chainId>-<escrow>-<payer>.json.
import { join } from "node:path";
import { getAddress, type Address, type Hex } from "viem";
import { LockedJsonFile } from "./locked-json-file.ts";

/** The payer's view of one channel. */
export interface ChannelRecord {
  node: Address;
  listingId: Hex;
  /** The highest cumulative amount signed: what the node could settle at most. */
  signed: bigint;
  /** The highest voucher the node's receipts show it accepted. */
  accepted: bigint;
  /** The channel's consumed total from the node's last valid receipt. */
  consumed: bigint;
  /** Requests with a valid receipt. */
  requests: number;
  /** The last valid receipt as the node sent it (the payer's evidence of `consumed`). */
  lastReceipt: unknown;
  updatedAt: number;
}

/** A payment: a receipt's cost, or the voucher growth of a request that ended without a receipt (exposure). */
export interface SpendRecord {
  at: number;
  amount: bigint;
  node: Address;
  listingId: Hex;
  requestId: string | null;
  kind: "receipt" | "unreceipted";
}

/** A receipt that did not hold. */
export interface DisputeRecord {
  at: number;
  node: Address;
  listingId: Hex;
  code: string;
  message: string;
  /** The receipt as the node sent it. */
  receipt: unknown;
  /** The voucher the request was served on. */
  voucherAmount: bigint;
}

export interface PayerStateData {
  channels: ChannelRecord[];
  spend: SpendRecord[];
  disputes: DisputeRecord[];
}

/** Spending older than this is dropped on write (the hourly limit and `openlora status` look back one hour). */
const SPEND_MEMORY_MS = 24 * 3600 * 1000;

interface Stored {
  version: 1;
  chainId: number;
  escrow: string;
  payer: string;
  channels: Record<string, StoredChannel>;
  spend: StoredSpend[];
  disputes: StoredDispute[];
}
type StoredChannel = Omit<ChannelRecord, "signed" | "accepted" | "consumed"> & {
  signed: string;
  accepted: string;
  consumed: string;
};
type StoredSpend = Omit<SpendRecord, "amount"> & { amount: string };
type StoredDispute = Omit<DisputeRecord, "voucherAmount"> & { voucherAmount: string };

const keyOf = (node: string, listingId: string): string => `${node.toLowerCase()}:${listingId.toLowerCase()}`;

export interface PayerStateScope {
  chainId: number;
  escrow: Address;
  payer: Address;
}

export class PayerState {
  readonly scope: PayerStateScope;
  readonly #file: LockedJsonFile<Stored>;

  constructor(dir: string, scope: PayerStateScope) {
    this.scope = scope;
    const name = `payer-${scope.chainId}-${scope.escrow.toLowerCase()}-${scope.payer.toLowerCase()}.json`;
    const empty = (): Stored => ({
      version: 1,
      chainId: scope.chainId,
      escrow: scope.escrow,
      payer: scope.payer,
      channels: {},
      spend: [],
      disputes: [],
    });
    this.#file = new LockedJsonFile(join(dir, name), empty, (raw) => checkStored(raw, scope));
  }

  get path(): string {
    return this.#file.path;
  }

  async read(): Promise<PayerStateData> {
    const s = await this.#file.read();
    return {
      channels: Object.values(s.channels).map(channelOf),
      spend: s.spend.map((e) => ({ ...e, node: getAddress(e.node), amount: BigInt(e.amount) })),
      disputes: s.disputes.map((d) => ({ ...d, node: getAddress(d.node), voucherAmount: BigInt(d.voucherAmount) })),
    };
  }

  async channel(node: Address, listingId: Hex): Promise<ChannelRecord> {
    const stored = (await this.#file.read()).channels[keyOf(node, listingId)];
    return stored ? channelOf(stored) : emptyChannel(node, listingId);
  }

  /** Raises the channel's signed mark to `amount` (before the voucher leaves: the exposure is known first). */
  noteSigned(node: Address, listingId: Hex, amount: bigint): Promise<ChannelRecord> {
    return this.#changeChannel(node, listingId, (c) => {
      if (amount > c.signed) c.signed = amount;
    });
  }

  /** A valid receipt: adopts its consumed total and accepted voucher, and records its cost as spent. */
  noteReceipt(
    node: Address,
    listingId: Hex,
    receipt: { requestId: string; cost: bigint; cumulativeConsumed: bigint; voucherAmount: bigint },
    json: unknown,
  ): Promise<ChannelRecord> {
    return this.#file.update((s) => {
      const c = this.#channelIn(s, node, listingId);
      c.consumed = receipt.cumulativeConsumed;
      if (receipt.voucherAmount > c.accepted) c.accepted = receipt.voucherAmount;
      c.requests++;
      c.lastReceipt = json;
      c.updatedAt = Date.now();
      s.channels[keyOf(node, listingId)] = storedChannel(c);
      pushSpend(s, {
        at: Date.now(),
        amount: receipt.cost,
        node,
        listingId,
        requestId: receipt.requestId,
        kind: "receipt",
      });
      return c;
    });
  }

  /** A request the node accepted ended without a receipt: its voucher's growth counts as spent (it may be settled). */
  noteUnreceipted(node: Address, listingId: Hex, amount: bigint): Promise<void> {
    return this.#file.update((s) => {
      pushSpend(s, { at: Date.now(), amount, node, listingId, requestId: null, kind: "unreceipted" });
    });
  }

  /** A receipt that did not hold: kept as evidence; the voucher it names was accepted by the node all the same. */
  noteDispute(dispute: Omit<DisputeRecord, "at">): Promise<void> {
    return this.#file.update((s) => {
      const c = this.#channelIn(s, dispute.node, dispute.listingId);
      if (dispute.voucherAmount > c.accepted) c.accepted = dispute.voucherAmount;
      c.updatedAt = Date.now();
      s.channels[keyOf(dispute.node, dispute.listingId)] = storedChannel(c);
      s.disputes.push({ ...dispute, at: Date.now(), voucherAmount: dispute.voucherAmount.toString() });
    });
  }

  /** Spent in [now - windowMs, now]: receipts' costs and unreceipted exposure. */
  async spentSince(since: number): Promise<bigint> {
    let total = 0n;
    for (const e of (await this.#file.read()).spend) if (e.at >= since) total += BigInt(e.amount);
    return total;
  }

  #channelIn(s: Stored, node: Address, listingId: Hex): ChannelRecord {
    const stored = s.channels[keyOf(node, listingId)];
    return stored ? channelOf(stored) : emptyChannel(node, listingId);
  }

  #changeChannel(node: Address, listingId: Hex, change: (c: ChannelRecord) => void): Promise<ChannelRecord> {
    return this.#file.update((s) => {
      const c = this.#channelIn(s, node, listingId);
      change(c);
      c.updatedAt = Date.now();
      s.channels[keyOf(node, listingId)] = storedChannel(c);
      return c;
    });
  }
}

function pushSpend(s: Stored, e: SpendRecord): void {
  const horizon = Date.now() - SPEND_MEMORY_MS;
  s.spend = s.spend.filter((x) => x.at >= horizon);
  s.spend.push({ ...e, amount: e.amount.toString() });
}

function emptyChannel(node: Address, listingId: Hex): ChannelRecord {
  return {
    node: getAddress(node),
    listingId: listingId.toLowerCase() as Hex,
    signed: 0n,
    accepted: 0n,
    consumed: 0n,
    requests: 0,
    lastReceipt: null,
    updatedAt: 0,
  };
}

function channelOf(s: StoredChannel): ChannelRecord {
  return {
    ...s,
    node: getAddress(s.node),
    signed: BigInt(s.signed),
    accepted: BigInt(s.accepted),
    consumed: BigInt(s.consumed),
  };
}

function storedChannel(c: ChannelRecord): StoredChannel {
  return {
    ...c,
    signed: c.signed.toString(),
    accepted: c.accepted.toString(),
    consumed: c.consumed.toString(),
  };
}

const DECIMAL = /^(0|[1-9][0-9]{0,77})$/;

/** The file must be this deployment's and this payer's, with amounts as decimal strings. */
function checkStored(raw: unknown, scope: PayerStateScope): Stored {
  const s = raw as Stored;
  if (typeof s !== "object" || s === null || s.version !== 1) throw new Error("not a version 1 payer state");
  if (s.chainId !== scope.chainId || s.escrow.toLowerCase() !== scope.escrow.toLowerCase()) {
    throw new Error(`it belongs to chain ${s.chainId}, escrow ${s.escrow}`);
  }
  if (s.payer.toLowerCase() !== scope.payer.toLowerCase()) throw new Error(`it belongs to payer ${s.payer}`);
  for (const c of Object.values(s.channels ?? {})) {
    for (const field of ["signed", "accepted", "consumed"] as const) {
      if (!DECIMAL.test(c[field]))
        throw new Error(`channel ${c.node}/${c.listingId}: ${field} is not a decimal amount`);
    }
  }
  for (const e of s.spend ?? []) if (!DECIMAL.test(e.amount)) throw new Error("a spend record's amount is not decimal");
  return { ...s, channels: s.channels ?? {}, spend: s.spend ?? [], disputes: s.disputes ?? [] };
}
