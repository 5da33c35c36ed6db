// The devnet's summary for a person: per node, per adapter, per contributor, and every holder's OPEN before and
// after, with the balance check's verdict. Amounts in OPEN, exact (18 decimals, no floating point).
import { formatUnits } from "viem";
import type { DevnetSummary } from "./summary.ts";

const open = (wei: bigint): string => formatUnits(wei, 18);

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  // Numbers to the right, words to the left.
  const numeric = head.map((_, i) => rows.length > 0 && rows.every((r) => /^[+-]?[\d.]+%?$/.test(String(r[i]))));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map((r) => line(r.map(String)))].join("\n");
}

export function summaryText(s: DevnetSummary): string {
  const nodes = table(
    ["node", "hot adapters", "requests", "tokens", "billed OPEN", "settled OPEN", "earned OPEN", "fetched from peers"],
    s.nodes.map((n) => [
      n.name,
      n.hot.join(",") || "(none)",
      n.requests,
      n.promptTokens + n.completionTokens,
      open(n.billed),
      open(n.settled),
      open(n.earnings),
      n.fetched.map((f) => `${f.adapter} from ${f.from}`).join(", ") || "-",
    ]),
  );
  const adapters = table(
    ["adapter", "requests", "served by", "tokens", "settled OPEN", "contributor pool", "paid out", "dust (wei)"],
    s.adapters.map((a) => [
      a.name,
      a.requests,
      a.servedBy.join(","),
      a.promptTokens + a.completionTokens,
      open(a.settled),
      open(a.pool),
      open(a.paidOut),
      a.dust.toString(),
    ]),
  );
  const contributors = table(
    ["contributor", "adapter", "weight", "owed (pool x weight)", "claimed"],
    s.contributors.map((k) => [k.name, k.adapter, `${k.weightBps / 100}%`, open(k.expected), open(k.claimed)]),
  );
  const after = new Map(s.totalsAfter.map((h) => [h.address, h.balance]));
  const holders = table(
    ["holder", "role", "before OPEN", "after OPEN", "change"],
    s.totalsBefore.map((h) => {
      const a = after.get(h.address) ?? 0n;
      const d = a - h.balance;
      return [h.name, h.role, open(h.balance), open(a), `${d > 0n ? "+" : ""}${open(d)}`];
    }),
  );
  const sum = (list: { balance: bigint }[]): bigint => list.reduce((t, h) => t + h.balance, 0n);
  const verdict = s.balanced
    ? `balanced: every balance equals what the nodes' ledgers say, to the wei (total ${open(sum(s.totalsAfter))} OPEN before and after)`
    : `NOT balanced:\n  ${s.problems.join("\n  ")}`;
  return [
    `OpenLoRA devnet: chain ${s.chainId} at ${s.rpcUrl}, ${s.seconds} s`,
    `fees: protocol ${s.fees.protocolFeeBps / 100}%, contributors ${s.fees.contributorShareBps / 100}% of every settled voucher`,
    "",
    "Nodes",
    nodes,
    "",
    "Adapters (billed = the receipts; settled = the vouchers, which may exceed the receipts by each channel's last unused max_tokens)",
    adapters,
    "",
    "Contributors (each claims floor(pool x weight / 10000); the remainder, under one wei per contributor, stays in the escrow)",
    contributors,
    "",
    "OPEN of every holder",
    holders,
    "",
    verdict,
  ].join("\n");
}
