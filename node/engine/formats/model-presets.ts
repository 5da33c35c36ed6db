// Random-weight models of the families people fine-tune (`openlora model new --family ...`, tests, benchmarks):
// each preset is that family's architecture, config.json keys, tokenizer kind with its special tokens, chat
// template and EOS list, as the family's real checkpoints have them, at any shape. The same canonical tensors
// write to a GGUF (gguf-write.ts) and a Hugging Face folder (hf-write.ts), so both forms must load to the same
// model.
import { plainArchitecture, withArchitecture, type Architecture, type ModelConfig } from "../model/config.ts";
import { llama3FreqFactors, type Llama3RopeScaling } from "../model/rope.ts";
import { randomByteLevelVocab } from "../tokenizer/byte-level-bpe.ts";
import { TOKEN_TYPE, type SentencePieceVocab } from "../tokenizer/sentencepiece-bpe.ts";
import type { GgufModelInput, GgufVocab } from "./gguf-write.ts";
import type { HfArchitecture } from "./hf-config.ts";
import { randomTensor, randomVocab } from "./random-model.ts";

export const MODEL_PRESETS = ["llama3", "qwen2", "qwen3", "mistral", "gemma2"] as const;
export type ModelPreset = (typeof MODEL_PRESETS)[number];

/** The shape of a random model. */
export interface ModelShape {
  layers: number;
  dim: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  /** Default dim / heads (Qwen3 and Gemma 2 usually give another). */
  headDim?: number;
  vocab: number;
  context: number;
  /** Gemma 2's window on its even layers (default 4096, as Gemma2Config's). */
  slidingWindow?: number;
}

/** A random model of a family: canonical tensors (GGUF names) and what its Hugging Face folder holds. */
export interface FamilyModel {
  preset: ModelPreset;
  input: GgufModelInput;
  /** config.json, generation_config.json and tokenizer_config.json as the family's checkpoints write them. */
  hfConfig: Record<string, unknown>;
  generationConfig: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

/** Llama 3.2's rope_scaling. */
const LLAMA3_SCALING: Llama3RopeScaling = {
  factor: 32,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 8192,
};

// Chat templates in each family's format, written for this project (the real ones add tool calling and dates).
const CHAT_TEMPLATES: Record<ModelPreset, string> = {
  llama3:
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + " +
    "message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}" +
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}",
  qwen2:
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}" +
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
  qwen3:
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}" +
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
  mistral:
    "{{- bos_token }}{%- for message in messages %}{%- if message['role'] == 'user' %}{{- '[INST] ' + message['content'] + ' [/INST]' }}" +
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}" +
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported') }}{%- endif %}{%- endfor %}",
  gemma2:
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}" +
    "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + " +
    "'<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}",
};

interface PresetSpec {
  architecture: HfArchitecture;
  modelType: string;
  ropeTheta: number;
  normEps: number;
  tied: boolean;
  /** Byte-level specials (the first is BOS where addBos), or SentencePiece control tokens added after <unk> <s> </s>. */
  tokenizer:
    | {
        kind: "byte-level";
        pre: "llama-bpe" | "qwen2";
        specials: string[];
        bos: string | null;
        eos: string;
        eog: string[];
      }
    | {
        kind: "sentencepiece";
        addSpacePrefix: boolean;
        names: [unk: string, bos: string, eos: string];
        extra: string[];
        eog: string[];
      };
}

/** Qwen2 and Qwen3 share one tokenizer (vocabulary, pre-tokenizer and special tokens). */
const QWEN_TOKENIZER: PresetSpec["tokenizer"] = {
  kind: "byte-level",
  pre: "qwen2",
  specials: ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
  bos: null,
  eos: "<|im_end|>",
  eog: ["<|im_end|>", "<|endoftext|>"],
};

const SPECS: Record<ModelPreset, PresetSpec> = {
  llama3: {
    architecture: "LlamaForCausalLM",
    modelType: "llama",
    ropeTheta: 500000,
    normEps: 1e-5,
    tied: true,
    tokenizer: {
      kind: "byte-level",
      pre: "llama-bpe",
      specials: [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eom_id|>",
        "<|eot_id|>",
      ],
      bos: "<|begin_of_text|>",
      eos: "<|eot_id|>",
      eog: ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
    },
  },
  qwen2: {
    architecture: "Qwen2ForCausalLM",
    modelType: "qwen2",
    ropeTheta: 1000000,
    normEps: 1e-6,
    tied: true,
    tokenizer: QWEN_TOKENIZER,
  },
  qwen3: {
    architecture: "Qwen3ForCausalLM",
    modelType: "qwen3",
    ropeTheta: 1000000,
    normEps: 1e-6,
    tied: true,
    tokenizer: QWEN_TOKENIZER,
  },
  mistral: {
    architecture: "MistralForCausalLM",
    modelType: "mistral",
    ropeTheta: 1000000,
    normEps: 1e-5,
    tied: false,
    tokenizer: {
      kind: "sentencepiece",
      addSpacePrefix: true,
      names: ["<unk>", "<s>", "</s>"],
      extra: [],
      eog: ["</s>"],
    },
  },
  gemma2: {
    architecture: "Gemma2ForCausalLM",
    modelType: "gemma2",
    ropeTheta: 10000,
    normEps: 1e-6,
    tied: true,
    tokenizer: {
      kind: "sentencepiece",
      addSpacePrefix: false,
      names: ["<unk>", "<bos>", "<eos>"],
      extra: ["<start_of_turn>", "<end_of_turn>"],
      eog: ["<eos>", "<end_of_turn>"],
    },
  },
};

/** The canonical config of a preset at a shape. */
export function presetConfig(preset: ModelPreset, shape: ModelShape): ModelConfig {
  const spec = SPECS[preset];
  const headDim = shape.headDim ?? shape.dim / shape.heads;
  const base: Omit<ModelConfig, "arch"> = {
    dim: shape.dim,
    hiddenDim: shape.hidden,
    nLayers: shape.layers,
    nHeads: shape.heads,
    nKvHeads: shape.kvHeads,
    headDim,
    vocabSize: shape.vocab,
    maxSeqLen: shape.context,
    normEps: spec.normEps,
    ropeTheta: spec.ropeTheta,
  };
  const arch: Architecture = {
    ...plainArchitecture(base),
    family: preset === "mistral" || preset === "llama3" ? "llama" : preset,
  };
  if (preset === "llama3") arch.ropeFreqFactors = llama3FreqFactors(headDim, spec.ropeTheta, LLAMA3_SCALING);
  if (preset === "qwen2") arch.qkvBias = true;
  if (preset === "qwen3") arch.qkNorm = true;
  if (preset === "gemma2") {
    Object.assign(arch, {
      activation: "gelu-tanh",
      postNorms: true,
      embedScale: Math.fround(Math.sqrt(shape.dim)),
      attnScale: Math.fround(headDim ** -0.5),
      attnSoftcap: 50,
      finalSoftcap: 30,
      slidingWindows: Array.from({ length: shape.layers }, (_, l) => (l % 2 === 0 ? (shape.slidingWindow ?? 4096) : 0)),
    } satisfies Partial<Architecture>);
  }
  return withArchitecture(base, arch);
}

/** A random model of the preset: deterministic per seed, norms and biases random around their neutral values. */
export function presetModel(
  preset: ModelPreset,
  shape: ModelShape,
  seed: number,
  name = `random-${preset}`,
): FamilyModel {
  const spec = SPECS[preset];
  const config = presetConfig(preset, shape);
  const tok = spec.tokenizer;
  let vocab: GgufVocab;
  let ids: { bos: number; eos: number; eog: number[]; bosText: string | null; eosText: string };
  if (tok.kind === "byte-level") {
    const bpe = randomByteLevelVocab(shape.vocab, seed, {
      pre: tok.pre,
      tokens: tok.specials,
      bos: tok.bos,
      eos: tok.eos,
      addBos: tok.bos !== null,
    });
    vocab = bpe;
    ids = {
      bos: bpe.bosId,
      eos: bpe.eosId,
      eog: tok.eog.map((t) => bpe.tokens.indexOf(t)),
      bosText: tok.bos,
      eosText: tok.eos,
    };
  } else {
    const spm = sentencePieceVocab(shape.vocab, seed, tok.names, tok.extra);
    vocab = spm;
    ids = {
      bos: spm.bosId,
      eos: spm.eosId,
      eog: tok.eog.map((t) => spm.pieces.indexOf(t)),
      bosText: tok.names[1],
      eosText: tok.names[2],
    };
  }
  const input: GgufModelInput = {
    name,
    config,
    vocab,
    addSpacePrefix: tok.kind === "sentencepiece" ? tok.addSpacePrefix : undefined,
    chatTemplate: CHAT_TEMPLATES[preset],
    tiedClassifier: spec.tied,
    tensor: (tensorName) => randomTensor(config, seed, tensorName, 0.05, 0.1),
  };
  return {
    preset,
    input,
    hfConfig: hfConfigJson(preset, config, shape, name, ids),
    generationConfig: {
      bos_token_id: ids.bos >= 0 ? ids.bos : undefined,
      eos_token_id: ids.eog,
      transformers_version: "4.57.0",
    },
    tokenizerConfig: {
      bos_token: ids.bosText,
      eos_token: ids.eosText,
      chat_template: CHAT_TEMPLATES[preset],
      ...(tok.kind === "sentencepiece" ? { add_bos_token: true, add_eos_token: false, unk_token: tok.names[0] } : {}),
      model_max_length: shape.context,
    },
  };
}

/** <unk>, BOS and EOS under the family's names, the byte tokens and merges, then the family's control tokens. */
function sentencePieceVocab(
  size: number,
  seed: number,
  names: readonly string[],
  extra: readonly string[],
): SentencePieceVocab {
  const vocab = randomVocab(size - extra.length, seed);
  vocab.pieces.splice(0, 3, ...names);
  for (const token of extra) {
    vocab.pieces.push(token);
    vocab.scores.push(0);
    vocab.types.push(TOKEN_TYPE.control);
  }
  return vocab;
}

/** config.json as the family's transformers config class saves it. */
function hfConfigJson(
  preset: ModelPreset,
  config: ModelConfig,
  shape: ModelShape,
  name: string,
  ids: { bos: number; eog: number[] },
): Record<string, unknown> {
  const spec = SPECS[preset];
  const json: Record<string, unknown> = {
    architectures: [spec.architecture],
    model_type: spec.modelType,
    _name_or_path: name,
    hidden_size: config.dim,
    intermediate_size: config.hiddenDim,
    num_hidden_layers: config.nLayers,
    num_attention_heads: config.nHeads,
    num_key_value_heads: config.nKvHeads,
    vocab_size: config.vocabSize,
    max_position_embeddings: config.maxSeqLen,
    rms_norm_eps: config.normEps,
    rope_theta: config.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: spec.tied,
    bos_token_id: ids.bos >= 0 ? ids.bos : null,
    eos_token_id: ids.eog.length === 1 ? ids.eog[0] : ids.eog,
    torch_dtype: "float32",
  };
  if (shape.headDim !== undefined) json.head_dim = config.headDim;
  switch (preset) {
    case "llama3":
      Object.assign(json, {
        hidden_act: "silu",
        attention_bias: false,
        mlp_bias: false,
        rope_scaling: {
          rope_type: "llama3",
          factor: LLAMA3_SCALING.factor,
          low_freq_factor: LLAMA3_SCALING.lowFreqFactor,
          high_freq_factor: LLAMA3_SCALING.highFreqFactor,
          original_max_position_embeddings: LLAMA3_SCALING.originalMaxPositionEmbeddings,
        },
      });
      break;
    case "qwen2":
    case "qwen3":
      Object.assign(json, {
        hidden_act: "silu",
        use_sliding_window: false,
        sliding_window: 4096,
        max_window_layers: config.nLayers,
      });
      if (preset === "qwen3") Object.assign(json, { attention_bias: false, head_dim: config.headDim });
      break;
    case "mistral":
      Object.assign(json, { hidden_act: "silu", sliding_window: null });
      break;
    case "gemma2":
      Object.assign(json, {
        head_dim: config.headDim,
        hidden_activation: "gelu_pytorch_tanh",
        hidden_act: "gelu_pytorch_tanh",
        query_pre_attn_scalar: config.headDim,
        attn_logit_softcapping: 50,
        final_logit_softcapping: 30,
        sliding_window: shape.slidingWindow ?? 4096,
        attention_bias: false,
        cache_implementation: "hybrid",
      });
      break;
  }
  return json;
}
