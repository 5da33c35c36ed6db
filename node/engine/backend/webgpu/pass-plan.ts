// The host's part of a step: the rows of the step's sequences, cut into passes that fit the step buffers, and
// each pass's tables (what the kernels index by row). Rows keep the steps' order: the engine orders sequences
// by adapter slot, so the rows of one adapter are consecutive and SGMV tiles them.
import type { SequenceStep } from "../backend.ts";
import { buildTiles } from "./ops.ts";

/** One token of one sequence in a step. */
export interface Row {
  token: number;
  position: number;
  /** Index of its sequence in the step. */
  seq: number;
  /** The sequence's last row in the step: its logits are wanted. */
  last: boolean;
}

/** Every row of a step, sequence by sequence. */
export function stepRows(steps: readonly SequenceStep[]): Row[] {
  const rows: Row[] = [];
  steps.forEach((step, seq) => {
    const n = step.tokens.length;
    step.tokens.forEach((token, i) => rows.push({ token, position: step.position + i, seq, last: i === n - 1 }));
  });
  return rows;
}

/**
 * Cuts rows into passes of at most maxRows rows and maxLast sequence ends. A long prefill spans several passes,
 * each its own submit, which is exact: a later row only reads earlier rows' K/V.
 */
export function splitPasses(rows: readonly Row[], maxRows: number, maxLast: number): Row[][] {
  const passes: Row[][] = [];
  for (let start = 0; start < rows.length;) {
    let end = start;
    let ends = 0;
    while (end < rows.length && end - start < maxRows && !(rows[end].last && ends === maxLast)) {
      if (rows[end].last) ends++;
      end++;
    }
    passes.push(rows.slice(start, end));
    start = end;
  }
  return passes;
}

/** What the kernels of one pass read, row by row. */
export interface PassTables {
  tokens: Uint32Array;
  positions: Uint32Array;
  /** Row r's K/V goes to pool row kvSlots[r] (block * blockSize + offset). */
  kvSlots: Uint32Array;
  /** Offset of row r's sequence's block table in `blocks`. */
  tables: Uint32Array;
  blocks: Uint32Array;
  /** SGMV tiles (rowStart, count, slot, 0) of rows whose slot holds an adapter. */
  tiles: Uint32Array;
  /** The pass rows that end a sequence, in sequence order, with their sequence. */
  lastRows: { row: number; seq: number }[];
}

export function passTables(
  rows: readonly Row[],
  steps: readonly SequenceStep[],
  blockSize: number,
  slotFilled: (slot: number) => boolean,
): PassTables {
  const T = rows.length;
  const t: PassTables = {
    tokens: new Uint32Array(T),
    positions: new Uint32Array(T),
    kvSlots: new Uint32Array(T),
    tables: new Uint32Array(T),
    blocks: new Uint32Array(0),
    tiles: buildTiles(
      rows.map((row) => steps[row.seq].slot),
      slotFilled,
    ),
    lastRows: [],
  };
  // Each sequence's block table, as far as this pass's rows reach.
  const reach = new Map<number, number>();
  for (const row of rows) reach.set(row.seq, Math.max(reach.get(row.seq) ?? 0, row.position));
  const blocks: number[] = [];
  const tableOf = new Map<number, number>();
  rows.forEach((row, r) => {
    const { blockTable } = steps[row.seq];
    t.tokens[r] = row.token;
    t.positions[r] = row.position;
    t.kvSlots[r] = blockTable[Math.floor(row.position / blockSize)] * blockSize + (row.position % blockSize);
    let offset = tableOf.get(row.seq);
    if (offset === undefined) {
      offset = blocks.length;
      tableOf.set(row.seq, offset);
      const needed = Math.floor(reach.get(row.seq)! / blockSize) + 1;
      for (let i = 0; i < needed; i++) blocks.push(blockTable[i]);
    }
    t.tables[r] = offset;
    if (row.last) t.lastRows.push({ row: r, seq: row.seq });
  });
  t.blocks = Uint32Array.from(blocks);
  return t;
}

/**
 * The decode step that follows `steps` when every sequence goes on: one token each (not known yet: 0 here) at the
 * next position, in the same order and slots. A sequence about to enter a block its table lacks gets block 0 in its
 * place (the engine picks the real one with the next plan: only data, uploaded then). Null when one would run past
 * the context.
 */
export function nextDecodeSteps(
  steps: readonly SequenceStep[],
  blockSize: number,
  maxSeqLen: number,
): SequenceStep[] | null {
  const next: SequenceStep[] = [];
  for (const step of steps) {
    const position = step.position + step.tokens.length;
    if (position >= maxSeqLen) return null;
    const blockTable = [...step.blockTable];
    while (blockTable.length * blockSize <= position) blockTable.push(0);
    next.push({ tokens: [0], position, blockTable, slot: step.slot });
  }
  return next;
}

/**
 * True when the same commands compute both passes: what encodePass records from the tables (rows, positions,
 * SGMV tiles, sequence ends) is equal; the rest (tokens, KV slots, block tables) is data, uploaded before a step.
 */
export function sameCommands(a: PassTables, b: PassTables): boolean {
  const equal = (x: Uint32Array, y: Uint32Array): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return (
    a.tokens.length === b.tokens.length &&
    equal(a.positions, b.positions) &&
    equal(a.tiles, b.tiles) &&
    a.lastRows.length === b.lastRows.length &&
    a.lastRows.every((l, i) => l.row === b.lastRows[i].row && l.seq === b.lastRows[i].seq)
  );
}
