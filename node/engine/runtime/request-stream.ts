import type { Completion, EngineEvent } from "./types.ts";

/**
 * The handle submit() returns: an async iterable of a request's events (tokens, then usage), filled by the
 * engine as steps finish, and the whole outcome as a promise. Events queue up when the reader is slower than
 * the engine; an engine-side failure ends the iteration with that error and rejects `result`.
 */
export class RequestStream implements AsyncIterable<EngineEvent> {
  readonly id: number;
  /** The outcome once the request has ended (also when nobody iterates). */
  readonly result: Promise<Completion>;
  #events: EngineEvent[] = [];
  #ended = false;
  #error: unknown = undefined;
  #wake: (() => void) | null = null;
  #settle!: { resolve: (c: Completion) => void; reject: (e: unknown) => void };

  constructor(id: number) {
    this.id = id;
    this.result = new Promise<Completion>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.result.catch(() => {}); // a reader of the events alone must not cause an unhandled rejection
  }

  /** Engine side: one more event. */
  push(event: EngineEvent): void {
    if (this.#ended) return;
    this.#events.push(event);
    this.#notify();
  }

  /** Engine side: the request ended normally. */
  end(completion: Completion): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#settle.resolve(completion);
    this.#notify();
  }

  /** Engine side: the request failed. */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#settle.reject(error);
    this.#notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<EngineEvent> {
    for (;;) {
      if (this.#events.length > 0) {
        yield this.#events.shift()!;
        continue;
      }
      if (this.#ended) {
        if (this.#error !== undefined) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
