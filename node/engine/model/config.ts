/** The shape of a model, whatever file it came from. */
export interface ModelConfig {
  /** Width of the residual stream. */
  dim: number;
  /** Width of the gated MLP. */
  hiddenDim: number;
  nLayers: number;
  /** Query heads; nHeads % nKvHeads == 0 (grouped-query attention). */
  nHeads: number;
  nKvHeads: number;
  /** Width of one attention head: dim / nHeads, or the config's explicit head_dim (Qwen3, Gemma 2). */
  headDim: number;
  vocabSize: number;
  /** Longest context the model supports (positions 0 .. maxSeqLen-1). */
  maxSeqLen: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** RoPE base frequency. */
  ropeTheta: number;
  /**
   * How the model departs from plain LLaMA (llama2.c, Llama 2); absent means none. Loaders leave it out when
   * every field equals plainArchitecture(config), so one model loads to equal configs from every file form.
   */
  arch?: Architecture;
}

/**
 * The architectures the engine computes, named as llama.cpp's GGUF general.architecture names them. Mistral is
 * "llama" (the same block; llama.cpp converts it to "llama" too), optionally with a sliding window.
 */
export const ARCHITECTURE_FAMILIES = ["llama", "qwen2", "qwen3", "gemma2"] as const;
export type ArchitectureFamily = (typeof ARCHITECTURE_FAMILIES)[number];

/** Every departure from plain LLaMA that a backend must implement; each field is what transformers computes. */
export interface Architecture {
  family: ArchitectureFamily;
  /**
   * Divisor of each RoPE pair's frequency (headDim / 2 values): pair i turns by position x theta^(-2i/headDim) /
   * ropeFreqFactors[i]. Llama 3's rope_scaling is expressed this way (llama.cpp stores it as rope_freqs.weight).
   */
  ropeFreqFactors: readonly number[] | null;
  /** Bias vectors on the q, k and v projections (Qwen2), added before RoPE. */
  qkvBias: boolean;
  /** RMSNorm of each q and k head over headDim with its own weight, before RoPE (Qwen3). */
  qkNorm: boolean;
  /** RMSNorm of the attention output and of the MLP output before each residual add (Gemma 2). */
  postNorms: boolean;
  /** The MLP gate activation: SiLU (SwiGLU) or GELU with the tanh approximation (GeGLU, Gemma). */
  activation: "silu" | "gelu-tanh";
  /** Multiplier of the token embeddings before the first layer (Gemma: sqrt(dim) rounded to float32). */
  embedScale: number;
  /** Multiplier of q·k before the softmax: 1/sqrt(headDim), Gemma 2: query_pre_attn_scalar^-0.5. */
  attnScale: number;
  /** Attention scores become cap * tanh(score / cap) (Gemma 2); 0 for none. */
  attnSoftcap: number;
  /** Logits become cap * tanh(logit / cap) (Gemma 2); 0 for none. */
  finalSoftcap: number;
  /**
   * Sliding window of each layer (nLayers values): 0 is full causal attention; w > 0 lets position p attend to
   * positions p - w + 1 .. p only (transformers masks kv positions <= p - w).
   */
  slidingWindows: readonly number[];
}

/** The architecture of a plain LLaMA of this shape: what a config without `arch` means. */
export function plainArchitecture(config: Omit<ModelConfig, "arch">): Architecture {
  return {
    family: "llama",
    ropeFreqFactors: null,
    qkvBias: false,
    qkNorm: false,
    postNorms: false,
    activation: "silu",
    embedScale: 1,
    attnScale: 1 / Math.sqrt(config.headDim),
    attnSoftcap: 0,
    finalSoftcap: 0,
    slidingWindows: new Array<number>(config.nLayers).fill(0),
  };
}

/** The model's architecture, its departures from plain LLaMA filled in. */
export function architectureOf(config: ModelConfig): Architecture {
  return config.arch ?? plainArchitecture(config);
}

/** The config with `arch` set, or left out when it is plain LLaMA (so every file form of a model compares equal). */
export function withArchitecture(config: Omit<ModelConfig, "arch">, arch: Architecture): ModelConfig {
  const { arch: _ignored, ...base } = config as ModelConfig;
  return isPlain(base, arch) ? base : { ...base, arch };
}

function isPlain(config: Omit<ModelConfig, "arch">, arch: Architecture): boolean {
  const plain = plainArchitecture(config);
  if (config.nHeads * config.headDim !== config.dim) return false;
  return (Object.keys(plain) as (keyof Architecture)[]).every(
    (key) => JSON.stringify(plain[key]) === JSON.stringify(arch[key]),
  );
}

/**
 * What a model asks beyond the plain LLaMA block (llama2.c, Llama 2), in words; null when nothing. A backend that
 * implements only the plain block refuses a model for which this is not null.
 */
export function beyondPlainLlama(config: ModelConfig): string | null {
  const arch = architectureOf(config);
  const plain = plainArchitecture(config);
  const features: string[] = [];
  if (qDimOf(config) !== config.dim)
    features.push(`head_dim ${config.headDim} with ${config.nHeads} heads != dim ${config.dim}`);
  for (const key of Object.keys(plain) as (keyof Architecture)[]) {
    if (JSON.stringify(plain[key]) !== JSON.stringify(arch[key])) features.push(key);
  }
  return features.length === 0 ? null : `${arch.family}: ${features.join(", ")}`;
}

/** Width of the q projection's output and the o projection's input: nHeads x headDim. */
export function qDimOf(config: ModelConfig): number {
  return config.nHeads * config.headDim;
}

/** The input and output width of each linear layer a LoRA adapter may target. */
export function projectionShape(config: ModelConfig, target: LinearTarget): { inDim: number; outDim: number } {
  const kvDim = config.nKvHeads * config.headDim;
  const qDim = qDimOf(config);
  switch (target) {
    case "q":
      return { inDim: config.dim, outDim: qDim };
    case "k":
      return { inDim: config.dim, outDim: kvDim };
    case "v":
      return { inDim: config.dim, outDim: kvDim };
    case "o":
      return { inDim: qDim, outDim: config.dim };
    case "gate":
      return { inDim: config.dim, outDim: config.hiddenDim };
    case "up":
      return { inDim: config.dim, outDim: config.hiddenDim };
    case "down":
      return { inDim: config.hiddenDim, outDim: config.dim };
  }
}

/** The seven linear layers of a LLaMA block, in the order every table of this project uses. */
export const LINEAR_TARGETS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
export type LinearTarget = (typeof LINEAR_TARGETS)[number];

/** Checks the invariants every loader must establish; returns a message naming the broken one. */
export function configProblem(config: ModelConfig): string | null {
  const ints: (keyof ModelConfig)[] = [
    "dim",
    "hiddenDim",
    "nLayers",
    "nHeads",
    "nKvHeads",
    "headDim",
    "vocabSize",
    "maxSeqLen",
  ];
  for (const key of ints) {
    const value = config[key];
    if (!Number.isInteger(value) || (value as number) <= 0) return `${key} must be a positive integer, got ${value}`;
  }
  if (config.arch === undefined && config.dim !== qDimOf(config)) {
    return `dim ${config.dim} != nHeads ${config.nHeads} x headDim ${config.headDim}`;
  }
  if (config.nHeads % config.nKvHeads !== 0)
    return `nHeads ${config.nHeads} is not a multiple of nKvHeads ${config.nKvHeads}`;
  if (config.headDim % 2 !== 0) return `headDim ${config.headDim} must be even for RoPE`;
  if (!(config.normEps > 0)) return `normEps must be positive, got ${config.normEps}`;
  if (!(config.ropeTheta > 0)) return `ropeTheta must be positive, got ${config.ropeTheta}`;
  return config.arch ? architectureProblem(config, config.arch) : null;
}

function architectureProblem(config: ModelConfig, arch: Architecture): string | null {
  if (!ARCHITECTURE_FAMILIES.includes(arch.family)) return `unknown architecture family ${JSON.stringify(arch.family)}`;
  const factors = arch.ropeFreqFactors;
  if (
    factors !== null &&
    (factors.length !== config.headDim / 2 || !factors.every((f) => f > 0 && Number.isFinite(f)))
  ) {
    return `ropeFreqFactors must be ${config.headDim / 2} positive numbers`;
  }
  if (arch.activation !== "silu" && arch.activation !== "gelu-tanh")
    return `unknown activation ${JSON.stringify(arch.activation)}`;
  for (const key of ["embedScale", "attnScale"] as const) {
    if (!(arch[key] > 0) || !Number.isFinite(arch[key])) return `${key} must be a positive number, got ${arch[key]}`;
  }
  for (const key of ["attnSoftcap", "finalSoftcap"] as const) {
    if (!(arch[key] >= 0) || !Number.isFinite(arch[key]))
      return `${key} must be 0 (none) or positive, got ${arch[key]}`;
  }
  const windows = arch.slidingWindows;
  if (windows.length !== config.nLayers || !windows.every((w) => Number.isInteger(w) && w >= 0)) {
    return `slidingWindows must be ${config.nLayers} non-negative integers (0: full attention)`;
  }
  return null;
}
