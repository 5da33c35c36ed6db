// A streamed paid answer: iterate it for the chunks (OpenAI's shape); `payment` resolves once the answer ended,
// with where it ran and the node's verified receipt. Only one iteration; `abort()` stops the request.
import type { Chunk } from "./openai-shapes.ts";

export class CompletionStream<Payment> implements AsyncIterable<Chunk> {
  /** Where the request ran, what it cost and the verified receipt; rejects with the request's error. */
  readonly payment: Promise<Payment>;
  readonly #chunks: AsyncGenerator<Chunk, Payment>;
  readonly #abort: AbortController;
  #settle!: { resolve: (p: Payment) => void; reject: (e: unknown) => void };
  #iterated = false;

  constructor(chunks: AsyncGenerator<Chunk, Payment>, abort: AbortController) {
    this.#chunks = chunks;
    this.#abort = abort;
    this.payment = new Promise<Payment>((resolve, reject) => (this.#settle = { resolve, reject }));
    this.payment.catch(() => undefined); // the iteration reports it too
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Chunk> {
    if (this.#iterated) throw new Error("a CompletionStream can be read once");
    this.#iterated = true;
    let finished = false;
    try {
      for (;;) {
        const step = await this.#chunks.next();
        if (step.done) {
          finished = true;
          this.#settle.resolve(step.value);
          return;
        }
        yield step.value;
      }
    } catch (error) {
      finished = true;
      this.#settle.reject(error);
      throw error;
    } finally {
      if (!finished) {
        // The reader left early: the request is stopped, and its payment reports that.
        this.#abort.abort(new Error("the stream was not read to its end"));
        await this.#chunks.return(undefined as never).catch(() => undefined);
        this.#settle.reject(new Error("the stream was not read to its end"));
      }
    }
  }

  /** Stops the request (the node cancels it and charges what it ran). */
  abort(reason?: unknown): void {
    this.#abort.abort(reason);
  }
}
