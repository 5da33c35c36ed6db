// Which variant of the LoRA, attention and norm kernels a backend runs: chosen once at start-up from the
// adapter, each overridable by an option of the backend (the tests run the GPU variants on lavapipe that way).
// The matvec/matmul choice predates this plan and lives in webgpu-backend.ts.
import { InvalidOptionError } from "../../errors.ts";
import type { AccumulateKind, AttentionKind, NormKind, SgmvKind } from "./ops.ts";

export interface KernelChoices {
  /**
   * The SGMV kernels: "segments" (sgmv-*-segment.wgsl, each adapter's A and B read once per segment of up to 16
   * rows, workgroup memory) or "portable" (sgmv-shrink/expand.wgsl, read once per 4 rows, no workgroup memory).
   * Default: segments on hardware adapters, portable on CPU-emulated ones (barriers are slow there).
   */
  sgmv?: SgmvKind;
  /**
   * Attention: "auto" (flash-decoding: a pass of few rows over a long context spreads each row's positions over
   * partitions, then merges them; ops.ts ATTENTION_SPLIT states from which context on), "split" (every pass of
   * few rows that spans two partitions) or "single" (one invocation per row and head, always). Default: auto.
   */
  attention?: AttentionKind;
  /**
   * The RMSNorms before q|k|v and gate|up in decode passes (at most 4 rows): "fused" into the projection
   * (matvec-splitk-norm.wgsl; with the split-k matvec only, which needs subgroups) or "separate" (rmsnorm.wgsl,
   * then the projection). Default: fused on hardware adapters with subgroups, separate otherwise.
   */
  norm?: NormKind;
  /**
   * The precision of the tiled matmul's stages and 32-term sums (the sums of stages are f32 always): "f16" (needs
   * shader-f16; inputs rounded to f16, within 2e-3 of f32 relative to the largest output), "f32", or "by-weights"
   * (f16 for f16-stored matrices only). Default: by-weights on hardware adapters with shader-f16, f32 otherwise
   * (float32 and quantized weights keep f32: their parity tolerance, 1e-4, would not hold). Only the tiled matmul
   * (prefill and batches of more than 4 rows on hardware adapters) has an f16 variant.
   */
  matmulAccumulate?: AccumulateKind;
}

export type KernelPlan = Required<KernelChoices>;

const KINDS: Record<keyof KernelChoices, readonly string[]> = {
  sgmv: ["portable", "segments"] satisfies SgmvKind[],
  attention: ["auto", "split", "single"] satisfies AttentionKind[],
  norm: ["fused", "separate"] satisfies NormKind[],
  matmulAccumulate: ["f32", "f16", "by-weights"] satisfies AccumulateKind[],
};

/** The variants for this adapter, where the options do not force one; an unknown variant name is refused. */
export function chooseKernels(
  options: KernelChoices,
  adapter: { isFallback: boolean; hasSubgroups: boolean; hasF16: boolean },
): KernelPlan {
  for (const [option, kinds] of Object.entries(KINDS)) {
    const value = options[option as keyof KernelChoices];
    if (value !== undefined && !kinds.includes(value)) {
      throw new InvalidOptionError(option, `unknown ${option} kernel ${JSON.stringify(value)}`, kinds.join(" or "));
    }
  }
  return {
    sgmv: options.sgmv ?? (adapter.isFallback ? "portable" : "segments"),
    attention: options.attention ?? "auto",
    norm: options.norm ?? (adapter.hasSubgroups && !adapter.isFallback ? "fused" : "separate"),
    // Without shader-f16 every choice is f32.
    matmulAccumulate: !adapter.hasF16
      ? "f32"
      : (options.matmulAccumulate ?? (adapter.isFallback ? "f32" : "by-weights")),
  };
}
