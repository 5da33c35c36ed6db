/** The shape of a LLaMA-architecture model, whatever file it came from. */
export interface ModelConfig {
  /** Width of the residual stream. */
  dim: number;
  /** Width of the SwiGLU MLP. */
  hiddenDim: number;
  nLayers: number;
  /** Query heads; nHeads % nKvHeads == 0 (grouped-query attention). */
  nHeads: number;
  nKvHeads: number;
  /** dim / nHeads. */
  headDim: number;
  vocabSize: number;
  /** Longest context the model supports (positions 0 .. maxSeqLen-1). */
  maxSeqLen: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** RoPE base frequency. */
  ropeTheta: number;
}

/** The input and output width of each linear layer a LoRA adapter may target. */
export function projectionShape(config: ModelConfig, target: LinearTarget): { inDim: number; outDim: number } {
  const kvDim = config.nKvHeads * config.headDim;
  switch (target) {
    case "q": return { inDim: config.dim, outDim: config.dim };
    case "k": return { inDim: config.dim, outDim: kvDim };
    case "v": return { inDim: config.dim, outDim: kvDim };
    case "o": return { inDim: config.dim, outDim: config.dim };
    case "gate": return { inDim: config.dim, outDim: config.hiddenDim };
    case "up": return { inDim: config.dim, outDim: config.hiddenDim };
    case "down": return { inDim: config.hiddenDim, outDim: config.dim };
  }
}

/** The seven linear layers of a LLaMA block, in the order every table of this project uses. */
export const LINEAR_TARGETS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
export type LinearTarget = (typeof LINEAR_TARGETS)[number];

/** Checks the invariants every loader must establish; throws a message naming the broken one. */
export function configProblem(config: ModelConfig): string | null {
  const ints: (keyof ModelConfig)[] = ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "headDim", "vocabSize", "maxSeqLen"];
  for (const key of ints) {
    const value = config[key];
    if (!Number.isInteger(value) || value <= 0) return `${key} must be a positive integer, got ${value}`;
  }
  if (config.dim !== config.nHeads * config.headDim) return `dim ${config.dim} != nHeads ${config.nHeads} x headDim ${config.headDim}`;
  if (config.nHeads % config.nKvHeads !== 0) return `nHeads ${config.nHeads} is not a multiple of nKvHeads ${config.nKvHeads}`;
  if (config.headDim % 2 !== 0) return `headDim ${config.headDim} must be even for RoPE`;
  if (!(config.normEps > 0)) return `normEps must be positive, got ${config.normEps}`;
  if (!(config.ropeTheta > 0)) return `ropeTheta must be positive, got ${config.ropeTheta}`;
  return null;
}
