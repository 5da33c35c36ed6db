// Small measuring helpers: percentiles, resident memory after a full garbage collection.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** The p-th percentile (0..100) by nearest rank; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

let gc: (() => void) | undefined;

/** Resident set size in bytes after a full collection (so garbage does not count), with what V8 accounts for. */
export function residentMemory(): { rss: number; heapTotal: number; arrayBuffers: number } {
  if (!gc) {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
  gc();
  const { rss, heapTotal, arrayBuffers } = process.memoryUsage();
  return { rss, heapTotal, arrayBuffers };
}

/** Rounds for the report: 3 significant digits, integers as they are. */
export function round(value: number): number {
  if (!Number.isFinite(value) || Number.isInteger(value)) return value;
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(value) || 1)));
  return Number(value.toFixed(Math.min(digits, 6)));
}
