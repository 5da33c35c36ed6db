// config.json of a Hugging Face causal LM, read as transformers reads it: each family's config class defaults
// (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, Gemma2Config), legacy rope_theta/rope_scaling and
// transformers 5's rope_parameters, layer_types for sliding windows. Whatever the engine would compute
// differently from transformers is refused by its key, naming the file.
import { basename } from "node:path";
import { ModelFormatError } from "../errors.ts";
import {
  configProblem,
  plainArchitecture,
  withArchitecture,
  type Architecture,
  type ModelConfig,
} from "../model/config.ts";
import { llama3FreqFactors } from "../model/rope.ts";

/** The Hugging Face architectures the engine runs, and how each maps to the engine's architecture family. */
export const HF_ARCHITECTURES = {
  LlamaForCausalLM: { modelType: "llama", family: "llama" },
  MistralForCausalLM: { modelType: "mistral", family: "llama" },
  Qwen2ForCausalLM: { modelType: "qwen2", family: "qwen2" },
  Qwen3ForCausalLM: { modelType: "qwen3", family: "qwen3" },
  Gemma2ForCausalLM: { modelType: "gemma2", family: "gemma2" },
} as const;
export type HfArchitecture = keyof typeof HF_ARCHITECTURES;

/** The defaults of each family's transformers config class, for the keys a config.json may leave out. */
const DEFAULTS: Record<
  HfArchitecture,
  { kvHeads: number | "heads"; maxPositions: number; tied: boolean; headDim: number | "split" }
> = {
  LlamaForCausalLM: { kvHeads: "heads", maxPositions: 2048, tied: false, headDim: "split" },
  MistralForCausalLM: { kvHeads: 8, maxPositions: 4096 * 32, tied: false, headDim: "split" },
  Qwen2ForCausalLM: { kvHeads: 32, maxPositions: 32768, tied: false, headDim: "split" },
  Qwen3ForCausalLM: { kvHeads: 32, maxPositions: 32768, tied: false, headDim: 128 },
  Gemma2ForCausalLM: { kvHeads: 4, maxPositions: 8192, tied: true, headDim: 256 },
};

/** config.json as far as the engine reads it. */
export interface HfModelConfig {
  architecture: HfArchitecture;
  config: ModelConfig;
  tiedClassifier: boolean;
  name?: string;
  bosId?: number;
  /** config.json's eos_token_id, one id or Llama 3's list. */
  eosIds: number[];
}

type Raw = Record<string, unknown>;

/** Parses config.json; refuses, by key, what the engine does not compute as transformers does. */
export function parseHfConfig(raw: Raw, file: string): HfModelConfig {
  const fail = (problem: string): never => {
    throw new ModelFormatError(file, problem);
  };
  const architecture = architectureOf(raw, fail);
  const defaults = DEFAULTS[architecture];
  const present = (key: string): boolean => raw[key] !== undefined && raw[key] !== null;
  const int = (key: string, fallback?: number): number => {
    const value = raw[key] ?? fallback;
    if (value === undefined || value === null) return fail(`${key} is missing`);
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0)
      return fail(`${key} must be a positive integer, got ${JSON.stringify(value)}`);
    return value;
  };
  const real = (key: string, fallback: number): number => {
    const value = raw[key] ?? fallback;
    if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value))
      return fail(`${key} must be a positive number, got ${JSON.stringify(value)}`);
    return value;
  };
  const optionalReal = (key: string, fallback: number | null): number => {
    const value = raw[key] === undefined ? fallback : raw[key];
    if (value === null) return 0;
    if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value))
      return fail(`${key} must be a positive number or null, got ${JSON.stringify(value)}`);
    return value;
  };
  if (present("quantization_config")) {
    fail(
      `quantization_config (${JSON.stringify((raw.quantization_config as Raw).quant_method ?? "?")}) is not supported: use an unquantized checkpoint or a GGUF`,
    );
  }
  const dim = int("hidden_size");
  const nHeads = int("num_attention_heads");
  const headDim = present("head_dim")
    ? int("head_dim")
    : defaults.headDim === "split"
      ? dim / nHeads
      : defaults.headDim;
  if (!Number.isInteger(headDim))
    fail(`hidden_size ${dim} is not a multiple of num_attention_heads ${nHeads} (and head_dim is not given)`);
  const nLayers = int("num_hidden_layers");
  const base: Omit<ModelConfig, "arch"> = {
    dim,
    hiddenDim: int("intermediate_size"),
    nLayers,
    nHeads,
    nKvHeads: int("num_key_value_heads", defaults.kvHeads === "heads" ? nHeads : defaults.kvHeads),
    headDim,
    vocabSize: int("vocab_size"),
    maxSeqLen: int("max_position_embeddings", defaults.maxPositions),
    normEps: real("rms_norm_eps", 1e-6),
    ropeTheta: 10000,
  };
  const rope = ropeOf(raw, base, fail);
  base.ropeTheta = rope.theta;
  const arch: Architecture = {
    ...plainArchitecture(base),
    family: HF_ARCHITECTURES[architecture].family,
    ropeFreqFactors: rope.factors,
  };

  if (present("partial_rotary_factor") && raw.partial_rotary_factor !== 1)
    fail(`partial_rotary_factor ${JSON.stringify(raw.partial_rotary_factor)} is not supported`);
  if (raw.mlp_bias === true) fail("mlp_bias true is not supported");
  // Qwen2's q/k/v biases are built in (and it has no attention_bias key); elsewhere the key adds one to o as well.
  if (raw.attention_bias === true && architecture !== "Qwen2ForCausalLM") {
    fail(`attention_bias true (a bias on q, k, v and o) is not supported for ${architecture}`);
  }
  if (raw.use_bidirectional_attention === true) fail("use_bidirectional_attention true is not supported");
  const activationKey = architecture === "Gemma2ForCausalLM" ? "hidden_activation" : "hidden_act";
  const activation = raw[activationKey] ?? (architecture === "Gemma2ForCausalLM" ? "gelu_pytorch_tanh" : "silu");
  if (architecture === "Gemma2ForCausalLM") {
    // gelu_new is the same tanh approximation; "gelu" (erf) is not.
    if (activation !== "gelu_pytorch_tanh" && activation !== "gelu_new")
      fail(`${activationKey} ${JSON.stringify(activation)} is not supported (only "gelu_pytorch_tanh")`);
    arch.activation = "gelu-tanh";
    arch.postNorms = true;
    arch.embedScale = Math.fround(Math.sqrt(dim)); // transformers multiplies by sqrt(hidden_size) as a tensor of the activations' dtype
    // The scale multiplies float32 scores: kept as the float32 that transformers and llama.cpp both multiply by.
    arch.attnScale = Math.fround(real("query_pre_attn_scalar", 256) ** -0.5);
    arch.attnSoftcap = optionalReal("attn_logit_softcapping", 50);
    arch.finalSoftcap = optionalReal("final_logit_softcapping", 30);
  } else if (activation !== "silu") {
    fail(`${activationKey} ${JSON.stringify(activation)} is not supported (only "silu")`);
  }
  if (architecture === "Qwen2ForCausalLM") arch.qkvBias = true; // Qwen2Attention: bias on q, k and v, none on o
  if (architecture === "Qwen3ForCausalLM") arch.qkNorm = true;
  arch.slidingWindows = slidingWindows(raw, architecture, nLayers, fail);

  const config = withArchitecture(base, arch);
  const problem = configProblem(config);
  if (problem) fail(problem);
  const optionalId = (value: unknown): number | undefined =>
    typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : undefined;
  return {
    architecture,
    config,
    tiedClassifier: typeof raw.tie_word_embeddings === "boolean" ? raw.tie_word_embeddings : defaults.tied,
    name: modelName(raw),
    bosId: optionalId(raw.bos_token_id),
    eosIds: eosIdsOf(raw.eos_token_id),
  };
}

/** eos_token_id as config.json or generation_config.json give it: one id or a list (Llama 3 Instruct). */
export function eosIdsOf(value: unknown): number[] {
  const ids = Array.isArray(value) ? value : [value];
  return ids.filter((id): id is number => typeof id === "number" && Number.isInteger(id) && id >= 0);
}

function architectureOf(raw: Raw, fail: (problem: string) => never): HfArchitecture {
  const supported = Object.keys(HF_ARCHITECTURES) as HfArchitecture[];
  const listed = raw.architectures;
  if (Array.isArray(listed)) {
    const found = supported.find((a) => listed.includes(a));
    return found ?? fail(`architectures ${JSON.stringify(listed)} are not supported (only ${supported.join(", ")})`);
  }
  const byType = supported.find((a) => HF_ARCHITECTURES[a].modelType === raw.model_type);
  return (
    byType ??
    fail(
      `model_type ${JSON.stringify(raw.model_type)} is not supported (only ${supported.map((a) => JSON.stringify(HF_ARCHITECTURES[a].modelType)).join(", ")})`,
    )
  );
}

/**
 * RoPE as transformers standardizes it: rope_parameters (transformers 5, one dict, or one per layer type when
 * all are equal), else rope_theta with rope_scaling (rope_type, or the older "type"). Types "default" and
 * "llama3" are computed; every other type is refused.
 */
function ropeOf(
  raw: Raw,
  config: Omit<ModelConfig, "arch">,
  fail: (problem: string) => never,
): { theta: number; factors: number[] | null } {
  let key = "rope_scaling";
  let params = raw.rope_scaling as Raw | null | undefined;
  let theta = raw.rope_theta ?? 10000;
  if (raw.rope_parameters !== undefined && raw.rope_parameters !== null) {
    key = "rope_parameters";
    params = raw.rope_parameters as Raw;
    const perLayerType = Object.values(params).every((v) => typeof v === "object" && v !== null);
    if (perLayerType) {
      const variants = new Set(Object.values(params).map((v) => JSON.stringify(v)));
      if (variants.size !== 1)
        fail(`rope_parameters differ between layer types (${Object.keys(params).join(", ")}): not supported`);
      params = Object.values(params)[0] as Raw;
    }
    theta = params.rope_theta ?? theta;
  }
  if (typeof theta !== "number" || !(theta > 0))
    fail(`rope_theta must be a positive number, got ${JSON.stringify(theta)}`);
  const type = params ? (params.rope_type ?? params.type ?? "default") : "default";
  if (type === "default") return { theta: theta as number, factors: null };
  if (type !== "llama3") fail(`${key} of type ${JSON.stringify(type)} is not supported (only "default" and "llama3")`);
  const number = (name: string): number => {
    const value = params![name];
    if (typeof value !== "number" || !(value > 0))
      return fail(`${key}.${name} must be a positive number, got ${JSON.stringify(value)}`);
    return value;
  };
  const scaling = {
    factor: number("factor"),
    lowFreqFactor: number("low_freq_factor"),
    highFreqFactor: number("high_freq_factor"),
    originalMaxPositionEmbeddings: number("original_max_position_embeddings"),
  };
  if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) fail(`${key}.high_freq_factor must exceed low_freq_factor`);
  return { theta: theta as number, factors: llama3FreqFactors(config.headDim, theta as number, scaling) };
}

/**
 * The sliding window of each layer, as each family's attention sets it: Mistral's sliding_window (default 4096,
 * null for none) on every layer; Qwen2/Qwen3 only with use_sliding_window, on the layers layer_types marks
 * (default: from max_window_layers on); Gemma 2 on layer_types' sliding layers (default: the even ones).
 */
function slidingWindows(
  raw: Raw,
  architecture: HfArchitecture,
  nLayers: number,
  fail: (problem: string) => never,
): number[] {
  const none = new Array<number>(nLayers).fill(0);
  const window = (fallback: number): number => {
    const value = raw.sliding_window === undefined ? fallback : raw.sliding_window;
    if (value === null) return 0;
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0)
      return fail(`sliding_window must be a positive integer or null, got ${JSON.stringify(value)}`);
    return value;
  };
  const layerTypes = (fallback: (i: number) => boolean): boolean[] => {
    if (raw.layer_types === undefined || raw.layer_types === null)
      return Array.from({ length: nLayers }, (_, i) => fallback(i));
    const types = raw.layer_types;
    if (!Array.isArray(types) || types.length !== nLayers) return fail(`layer_types must list ${nLayers} layer types`);
    return types.map(
      (t) =>
        t === "sliding_attention" ||
        (t === "full_attention"
          ? false
          : fail(
              `layer_types entry ${JSON.stringify(t)} is not supported (only "full_attention", "sliding_attention")`,
            )),
    );
  };
  switch (architecture) {
    case "LlamaForCausalLM":
      return none;
    case "MistralForCausalLM":
      return none.fill(window(4096));
    case "Qwen2ForCausalLM":
    case "Qwen3ForCausalLM": {
      if (raw.use_sliding_window !== true) return none;
      const w = window(4096);
      const from = raw.max_window_layers ?? 28;
      if (typeof from !== "number" || !Number.isInteger(from) || from < 0)
        fail(`max_window_layers must be a non-negative integer, got ${JSON.stringify(from)}`);
      return layerTypes((i) => w > 0 && i >= (from as number)).map((sliding) => (sliding ? w : 0));
    }
    case "Gemma2ForCausalLM": {
      const w = window(4096);
      return layerTypes((i) => i % 2 === 0).map((sliding) => (sliding ? w : 0));
    }
  }
}

/** A hub id ("meta-llama/Llama-3.2-1B") is kept; a local path saved by transformers is cut to its last part. */
function modelName(raw: Raw): string | undefined {
  const name = raw._name_or_path;
  if (typeof name !== "string" || name === "") return undefined;
  return /^[./\\~]|^[A-Za-z]:/.test(name) ? basename(name) : name;
}
