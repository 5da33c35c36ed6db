// The scheduler's test bench (scheduler.test.ts, scheduler-owners.test.ts): real Sequences and a real
// BlockAllocator, steps "run" by moving each row's sequence forward, and a slot source whose adapters the test makes
// ready or loading.
import { BlockAllocator } from "../../node/engine/kv/block-allocator.ts";
import { RequestStream } from "../../node/engine/runtime/request-stream.ts";
import { Scheduler, type Row, type SlotSource } from "../../node/engine/runtime/scheduler.ts";
import { Sequence } from "../../node/engine/runtime/sequence.ts";
import type { SchedulerOptions } from "../../node/engine/runtime/types.ts";
import { stories } from "../helpers/stories.ts";

const { tokenizer } = await stories();
/** A token that is neither BOS nor EOS: what every simulated step samples. */
export const TOKEN = 300;

/** Adapter slots as the scheduler sees them: ready in a slot, loading, or neither; pins and wishes recorded. */
export class TestSlots implements SlotSource {
  readonly ready = new Map<string, number>();
  readonly loading = new Set<string>();
  readonly pins = new Map<number, number>();
  readonly wanted: string[][] = [];
  readySlot(id: string): number {
    return this.ready.get(id) ?? -1;
  }
  isLoading(id: string): boolean {
    return this.loading.has(id);
  }
  pin(id: string): number {
    const slot = this.ready.get(id)!;
    this.pins.set(slot, (this.pins.get(slot) ?? 0) + 1);
    return slot;
  }
  unpin(slot: number): void {
    this.pins.set(slot, this.pins.get(slot)! - 1);
  }
  want(ids: Iterable<string>): void {
    this.wanted.push([...ids]);
  }
}

export interface Setup {
  scheduler: Scheduler;
  kv: BlockAllocator;
  slots: TestSlots;
  /** Enqueues a request of `prompt` tokens (arrival order = call order), for `owner` when given. */
  add(prompt: number, options?: { adapterId?: string; maxTokens?: number; owner?: string }): Sequence;
  /**
   * Plans one step (within `tokenCap` tokens when given) and runs it: every row's positions become computed,
   * sampling rows get TOKEN.
   */
  step(tokenCap?: number): Row[];
}

export function setup(numBlocks: number, blockSize: number, options: Partial<SchedulerOptions> = {}): Setup {
  const kv = new BlockAllocator(numBlocks, blockSize);
  const slots = new TestSlots();
  const scheduler = new Scheduler(kv, slots, options);
  let nextId = 1;
  return {
    scheduler,
    kv,
    slots,
    add(prompt, { adapterId, maxTokens = 100, owner } = {}) {
      const id = nextId++;
      const request = {
        adapterId: adapterId ?? null,
        promptIds: Array.from({ length: prompt }, (_, i) => 1 + (i % 200)),
        maxTokens,
        params: { temperature: 0, topK: 0, topP: 1 },
        seed: 0,
        stop: [],
        ignoreEos: true,
      };
      const seq = new Sequence(id, id, request, new RequestStream(id), tokenizer, scheduler.steps);
      if (owner !== undefined) seq.owner = owner;
      scheduler.enqueue(seq);
      return seq;
    },
    step(tokenCap) {
      const rows = scheduler.plan(tokenCap);
      for (const row of rows) {
        row.seq.computed = row.to;
        if (row.sample) row.seq.text.push(TOKEN);
      }
      return rows;
    },
  };
}

export const shape = (rows: Row[]) => rows.map((r) => [r.seq.id, r.from, r.to, r.sample]);
