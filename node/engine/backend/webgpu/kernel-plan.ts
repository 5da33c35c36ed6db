// Which variant of the LoRA, attention and norm kernels a backend runs: chosen once at start-up from the
// adapter, each overridable by an option of the backend (the tests run the GPU variants on lavapipe that way).
// The matvec/matmul choice predates this plan and lives in webgpu-backend.ts.
import { InvalidOptionError } from "../../errors.ts";
import type { SgmvKind } from "./ops.ts";

export interface KernelChoices {
  /**
   * The SGMV kernels: "segments" (sgmv-*-segment.wgsl, each adapter's A and B read once per segment of up to 16
   * rows, workgroup memory) or "portable" (sgmv-shrink/expand.wgsl, read once per 4 rows, no workgroup memory).
   * Default: segments on hardware adapters, portable on CPU-emulated ones (barriers are slow there).
   */
  sgmv?: SgmvKind;
}

export type KernelPlan = Required<KernelChoices>;

const SGMV_KINDS: readonly SgmvKind[] = ["portable", "segments"];

/** The variants for this adapter, where the options do not force one; an unknown variant name is refused. */
export function chooseKernels(options: KernelChoices, adapter: { isFallback: boolean }): KernelPlan {
  if (options.sgmv !== undefined && !SGMV_KINDS.includes(options.sgmv)) {
    throw new InvalidOptionError(
      "sgmv",
      `unknown SGMV kernel ${JSON.stringify(options.sgmv)}`,
      SGMV_KINDS.join(" or "),
    );
  }
  return { sgmv: options.sgmv ?? (adapter.isFallback ? "portable" : "segments") };
}
