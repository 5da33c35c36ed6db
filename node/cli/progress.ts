// Start-up progress for a person watching: on a terminal one bar per stage redrawn in place; elsewhere (logs,
// pipes, CI) one plain line per step, so nothing fills a log file with redraws.
import type { StartProgress } from "../api/index.ts";

const LABELS: Record<StartProgress["stage"], string> = {
  ledger: "opening the ledger",
  model: "loading the model",
  adapters: "importing adapters",
  chain: "connecting to the chain",
  p2p: "joining the peer network",
  api: "starting the API",
};
const WIDTH = 24;

export function progressDisplay(out: NodeJS.WriteStream = process.stderr): (p: StartProgress) => void {
  if (!out.isTTY) {
    return (p) => {
      if (p.done === 0 && p.total > 1) return; // the start of a multi-step stage says nothing yet
      const detail = p.detail ? `: ${p.detail}` : "";
      out.write(`[openlora] ${LABELS[p.stage]} ${p.done}/${p.total}${detail}\n`);
    };
  }
  return (p) => {
    const filled = p.total === 0 ? WIDTH : Math.round((WIDTH * p.done) / p.total);
    const bar = `${"#".repeat(filled)}${"-".repeat(WIDTH - filled)}`;
    const detail = p.detail ? ` ${p.detail}` : "";
    const line = `[openlora] ${LABELS[p.stage].padEnd(24)} [${bar}] ${p.done}/${p.total}${detail}`;
    // Cut to the terminal's width (a terminal that reports none gets 120 columns) so the line redraws in place.
    const width = out.columns > 20 ? out.columns - 1 : 120;
    out.write(`\r\x1b[2K${line.slice(0, width)}`);
    if (p.done === p.total) out.write("\n");
  };
}
