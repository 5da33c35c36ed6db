import { createRng } from "../sampling/rng.ts";
import { TextStream } from "../text-stream.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { LOCAL_OWNER, type AdmissionTicket } from "./admission.ts";
import type { RequestStream } from "./request-stream.ts";
import type { ValidRequest } from "./validate.ts";

export type SequenceState = "waiting" | "running" | "finished";

/**
 * One request inside the engine. Its input is the prompt followed by what it generated; `computed` counts the
 * positions already in its KV blocks. Prefill and decode are the same thing here: feed input[computed..] in
 * chunks, and sample when a chunk reaches the end of the input. After a preemption computed is 0 again and
 * the generated tokens are recomputed as prompt, which leaves the output unchanged: same inputs, same rng.
 */
export class Sequence {
  readonly id: number;
  /** Arrival order: smaller is older. Preempted sequences keep theirs, so they go back to the front. */
  readonly order: number;
  readonly request: ValidRequest;
  readonly stream: RequestStream;
  readonly text: TextStream;
  /** One draw per sampled token, from the request's own seed. */
  readonly rng: () => number;
  readonly submittedAt: number;
  state: SequenceState = "waiting";
  /** KV blocks holding positions 0 .. computed - 1, in order. */
  readonly blockTable: number[] = [];
  computed = 0;
  /** Adapter slot pinned while running, -1 for none. */
  slot = -1;
  /** Scheduler step at which it last joined the waiting queue. */
  queuedAtStep: number;
  preemptions = 0;
  admittedAt = -1;
  firstTokenAt = -1;
  /** Who it is for: the scheduler shares rows and prefill among owners. */
  owner = LOCAL_OWNER;
  /** Its hold on the engine's admission bounds, released when it ends. */
  admission: AdmissionTicket | null = null;

  constructor(
    id: number,
    order: number,
    request: ValidRequest,
    stream: RequestStream,
    tokenizer: Tokenizer,
    step: number,
  ) {
    this.id = id;
    this.order = order;
    this.request = request;
    this.stream = stream;
    this.text = new TextStream(tokenizer, request.promptIds, request.stop, { ignoreEos: request.ignoreEos });
    this.rng = createRng(request.seed);
    this.submittedAt = performance.now();
    this.queuedAtStep = step;
  }

  /** Generated tokens (EOS excluded). */
  get generated(): readonly number[] {
    return this.text.tokenIds;
  }

  /** Length of the whole input: prompt plus generated tokens. */
  get inputLength(): number {
    return this.request.promptIds.length + this.text.tokenIds.length;
  }

  /** Tokens still to feed before the next sample. */
  get pending(): number {
    return this.inputLength - this.computed;
  }

  /** Input tokens [from, to). */
  input(from: number, to: number): number[] {
    const prompt = this.request.promptIds;
    const out: number[] = [];
    for (let i = from; i < to; i++) out.push(i < prompt.length ? prompt[i] : this.text.tokenIds[i - prompt.length]);
    return out;
  }
}
