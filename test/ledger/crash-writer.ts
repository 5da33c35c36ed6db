// The child of the ledger's crash test: records request after request (and now and then a settlement batch)
// into the ledger at argv[2], starting at request number argv[3], printing a line to stdout after each change
// has resolved, until the parent kills it with SIGKILL. On start it finishes the batches a killed predecessor
// left pending, as a node reconciling with the chain would (this writer has no chain: each is taken as mined).
import { Ledger, type SettlementRecord, type VoucherOutcome } from "../../node/ledger/index.ts";
import { requestFor, txHashOf } from "./records.ts";

const [path, startArg] = process.argv.slice(2);
const ledger = await Ledger.open(path);

// stdout is a pipe, which Node writes synchronously on Linux: once write() returns, the parent will see the line.
const report = (line: string): void => void process.stdout.write(`${line}\n`);

/** What a chain would pay: each voucher's growth over its channel's settled amount. */
async function outcomesOf(s: SettlementRecord): Promise<VoucherOutcome[]> {
  const out: VoucherOutcome[] = [];
  for (const v of s.vouchers) {
    const growth = v.cumulativeAmount - ((await ledger.channel(v))?.settled ?? 0n);
    out.push(growth > 0n ? { status: "paid", amount: growth } : { status: "skipped", reason: "NotGrowing" });
  }
  return out;
}

/** About one batch in eight reverts (by its hash); the others are mined. */
async function finish(s: SettlementRecord): Promise<void> {
  if (Number.parseInt(s.txHash.slice(-2), 16) % 8 === 0) {
    await ledger.failSettlement(s.txHash, "reverted", 25_000n);
    report(`s ${s.batchId} failed`);
  } else {
    await ledger.confirmSettlement(s.txHash, await outcomesOf(s), 40_000n + 30_000n * BigInt(s.vouchers.length));
    report(`s ${s.batchId} confirmed`);
  }
}

for (const s of await ledger.pendingSettlements()) await finish(s);

for (let n = Number(startArg); ; n++) {
  await ledger.recordRequest(requestFor(n));
  report(`r ${n}`);
  const channels = n % 6 === 3 ? (await ledger.unsettledChannels()).slice(0, 4) : [];
  if (channels.length > 0) {
    const id = `b-${process.pid}-${n}`;
    const pending = await ledger.recordPendingSettlement({ id, vouchers: channels.map((c) => c.latest) }, txHashOf(id));
    report(`p ${id}`);
    await finish(pending);
  }
}
