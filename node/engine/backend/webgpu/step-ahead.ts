// The step pipeline: while the device runs decode step n, the host records step n+1 as it will be if every
// sequence goes on (pass-plan.ts nextDecodeSteps), and keeps the finished command buffer. When the engine then asks
// for a step those commands compute (pass-plan.ts sameCommands: same rows, positions, tiles and sequence ends),
// its tables (step n's sampled tokens, a new block where one was entered) and draws are uploaded and the recorded
// commands submitted: the recording (the host's main cost of a step) left the critical path. Any other step drops
// the recording and is recorded as usual. Uploads are ordered on the queue, so the placeholders the recording
// wrote while step n ran reach the device after step n, and the real tables overwrite them before step n+1 runs.
import { StepEncoder } from "./kernels.ts";
import type { PassTables } from "./pass-plan.ts";

/** A recorded step waiting for its tokens. */
export interface AheadStep {
  tables: PassTables;
  /** Sequences and result bytes per sequence of the step it was recorded for. */
  sequences: number;
  outBytes: number;
  commands: GPUCommandBuffer;
}

/** A StepEncoder that keeps its commands instead of submitting them (the parameters upload when they are sent). */
export class DeferredStepEncoder extends StepEncoder {
  commands: GPUCommandBuffer | null = null;

  override submit(): void {
    this.endPass();
    this.commands = this.encoder.finish();
  }
}
