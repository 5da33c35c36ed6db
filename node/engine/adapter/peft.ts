import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { AdapterError } from "../errors.ts";
import { SafetensorsFile } from "../formats/safetensors.ts";
import { RE2JS } from "re2js";
import {
  architectureOf,
  LINEAR_TARGETS,
  projectionShape,
  type LinearTarget,
  type ModelConfig,
} from "../model/config.ts";
import { unpermuteRotateHalfRows } from "../model/rope-basis.ts";
import type { QkBasis } from "../model/weights.ts";
import { MAX_LAYERS, withId } from "./canonical.ts";
import type { LoraAdapter, LoraPair } from "./lora.ts";
import { compileModulePatterns, modulePatternValue, type ModulePattern } from "./module-pattern.ts";

/** The model an adapter must fit. Without it an adapter is read as it stands (e.g. `adapter inspect`). */
export interface AdapterExpectations {
  config: ModelConfig;
  /** The loaded model's name; compared with the adapter's base_model_name_or_path. */
  name: string;
  /**
   * Other names of the model that adapters may give as base_model_name_or_path (the hub id of a GGUF's source,
   * say "meta-llama/Llama-3.2-1B" for "Llama 3.2 1B"): compared like the name.
   */
  aliases?: readonly string[];
  qkBasis: QkBasis;
  /** Largest rank accepted (the backend's slot rank). */
  maxRank: number;
}

/** The subset of PEFT's adapter_config.json that LoRA inference needs. */
export interface PeftConfig {
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  targetModules: LinearTarget[];
  /**
   * Whether PEFT wrapped the target of a layer: a list of names matches a module whose name is the entry or ends
   * with "." + entry; a string is a regular expression the whole module name must match ("all-linear": every
   * projection). Tensors outside it are refused.
   */
  targets(layer: number, target: LinearTarget): boolean;
  /** rank_pattern and alpha_pattern, keys in their order (module-pattern.ts: PEFT's rule, without backtracking). */
  rankPattern: ModulePattern[];
  alphaPattern: ModulePattern[];
  baseModel: string;
}

const MODULE_OF_TARGET: Record<LinearTarget, string> = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
};
const TARGET_OF_NAME: Record<string, LinearTarget> = {
  q_proj: "q",
  k_proj: "k",
  v_proj: "v",
  o_proj: "o",
  gate_proj: "gate",
  up_proj: "up",
  down_proj: "down",
};
/**
 * A tensor of adapter_model.safetensors: its shape from the header, its values (or how to read them) taken only
 * after its name and shape passed every check, so a hostile header costs no tensor read.
 */
export interface PeftTensor {
  shape: number[];
  data: Float32Array | (() => Float32Array);
}
/** Without a model, the widest projection accepted (the supported families' widest is 53248). */
const MAX_ADAPTER_DIM = 1 << 17;
const KEY =
  /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.lora_(A|B)\.weight$/;
/** Modules PEFT can wrap that the engine does not serve LoRA on: the embedding and the classifier. */
const UNSERVED_MODULES = ["lm_head", "embed_tokens"];
/** adapter_config.json keys that change what LoRA computes, refused when set (null, false, [] and {} are unset). */
const UNSUPPORTED_KEYS: Record<string, string> = {
  modules_to_save: "the adapter carries whole trained copies of these modules",
  use_dora: "DoRA rescales the weights by a learned magnitude",
  lora_bias: "a bias on lora_B",
  layers_to_transform: "LoRA on some layers only by index",
  layers_pattern: "LoRA on some layers only by pattern",
  target_parameters: "LoRA on parameters rather than modules",
  trainable_token_indices: "trained embedding rows",
};

/** Loads a Hugging Face PEFT LoRA folder (adapter_config.json + adapter_model.safetensors) into canonical form. */
export async function loadPeftAdapter(
  dir: string,
  expect?: AdapterExpectations,
): Promise<{ adapter: LoraAdapter; encoded: Uint8Array }> {
  const configFile = join(dir, "adapter_config.json");
  const tensorFile = join(dir, "adapter_model.safetensors");
  const configText = await readFile(configFile, "utf8").catch((error) => {
    throw new AdapterError(dir, `cannot read adapter_config.json (${(error as Error).message})`);
  });
  const config = parsePeftConfig(configText, configFile);
  await stat(tensorFile).catch((error) => {
    throw new AdapterError(dir, `cannot read adapter_model.safetensors (${(error as Error).message})`);
  });
  // The header only: its ranges tile the data (no byte outside a tensor), and each tensor is read after its
  // name and shape passed against the config (and the model), so what is read is what the config implies: a
  // 1.5 GiB file with a well-formed header is refused from its header.
  const file = SafetensorsFile.open(tensorFile);
  try {
    const tensors = new Map<string, PeftTensor>();
    for (const [name, { shape }] of file.tensors) tensors.set(name, { shape, data: () => file.read(name) });
    return peftToAdapter(config, tensors, dir, expect);
  } finally {
    file.close();
  }
}

/** Validates adapter_config.json; `file` names it in errors. */
export function parsePeftConfig(text: string, file: string): PeftConfig {
  const fail = (problem: string): never => {
    throw new AdapterError(file, problem);
  };
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return fail(`not valid JSON (${(error as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("not a JSON object");
  if (raw.peft_type !== undefined && raw.peft_type !== "LORA")
    fail(`peft_type ${JSON.stringify(raw.peft_type)} is not LORA`);
  if (!Number.isInteger(raw.r) || (raw.r as number) <= 0)
    fail(`r must be a positive integer, got ${JSON.stringify(raw.r)}`);
  if (typeof raw.lora_alpha !== "number" || !Number.isFinite(raw.lora_alpha))
    fail(`lora_alpha must be a number, got ${JSON.stringify(raw.lora_alpha)}`);
  if (raw.fan_in_fan_out === true) fail("fan_in_fan_out adapters (Conv1D layouts) are not supported");
  if (raw.bias !== undefined && raw.bias !== "none")
    fail(`bias ${JSON.stringify(raw.bias)} is not supported (only "none")`);
  for (const [key, what] of Object.entries(UNSUPPORTED_KEYS)) {
    const value = raw[key];
    const unset =
      value === undefined ||
      value === null ||
      value === false ||
      (typeof value === "object" && Object.keys(value).length === 0);
    if (!unset) fail(`${key} ${JSON.stringify(value)} is not supported (${what})`);
  }
  const { targetModules, targets } = targetsOf(raw.target_modules, fail);
  // JSON.parse keeps the file's key order except for integer-like keys, which come first: such a key can never
  // match a module name (those end in a projection's name), so the first match is the one PEFT finds.
  const pattern = (key: string): ModulePattern[] => {
    const value = raw[key] ?? {};
    if (typeof value !== "object" || value === null || Array.isArray(value)) fail(`${key} must be an object`);
    const entries = Object.entries(value as object);
    for (const [name, n] of entries) {
      if (typeof n !== "number" || !(n > 0) || !Number.isFinite(n))
        fail(`${key}[${name}] must be a positive finite number`);
    }
    return compileModulePatterns(entries, (problem) => fail(`${key} ${problem}`));
  };
  return {
    r: raw.r as number,
    loraAlpha: raw.lora_alpha as number,
    useRslora: raw.use_rslora === true,
    targetModules,
    targets,
    rankPattern: pattern("rank_pattern"),
    alphaPattern: pattern("alpha_pattern"),
    baseModel: typeof raw.base_model_name_or_path === "string" ? raw.base_model_name_or_path : "",
  };
}

/**
 * target_modules as PEFT reads it (peft/tuners/tuners_utils.py check_target_module_exists): a list of module
 * names or suffixes, or one regular expression matched against the whole module name (RE2: linear time on a
 * downloaded config), or "all-linear". lm_head and embed_tokens are refused by name.
 */
function targetsOf(value: unknown, fail: (problem: string) => never): Pick<PeftConfig, "targetModules" | "targets"> {
  const moduleName = (layer: number, target: LinearTarget): string =>
    `model.layers.${layer}.${MODULE_OF_TARGET[target]}`;
  if (value === "all-linear") return { targetModules: [...LINEAR_TARGETS], targets: () => true };
  if (typeof value === "string") {
    if (UNSERVED_MODULES.includes(value))
      fail(`target_modules "${value}": LoRA on ${value} is not supported (only the q,k,v,o,gate,up,down projections)`);
    let regex: RE2JS;
    try {
      regex = RE2JS.compile(value);
    } catch (error) {
      return fail(
        `target_modules ${JSON.stringify(value)} is not a usable regular expression: ${(error as Error).message}`,
      );
    }
    const targets = (layer: number, target: LinearTarget): boolean => regex.matches(moduleName(layer, target));
    for (const unserved of UNSERVED_MODULES) {
      if (regex.matches(unserved) || regex.matches(`model.${unserved}`))
        fail(`target_modules ${JSON.stringify(value)} matches ${unserved}: LoRA on ${unserved} is not supported`);
    }
    return { targetModules: LINEAR_TARGETS.filter((t) => targets(0, t)), targets };
  }
  if (!Array.isArray(value) || value.length === 0) return fail("target_modules must be a non-empty list");
  const names = value.map(String);
  for (const name of names) {
    const last = name.split(".").pop()!;
    if (UNSERVED_MODULES.includes(last))
      fail(
        `target_modules lists "${name}": LoRA on ${last} is not supported (only the q,k,v,o,gate,up,down projections)`,
      );
    if (!TARGET_OF_NAME[last])
      fail(`unknown target module ${JSON.stringify(name)} (supported: ${Object.keys(TARGET_OF_NAME).join(", ")})`);
  }
  const targets = (layer: number, target: LinearTarget): boolean => {
    const full = moduleName(layer, target);
    return names.some((name) => full === name || full.endsWith(`.${name}`));
  };
  return {
    targetModules: LINEAR_TARGETS.filter((t) => names.some((n) => TARGET_OF_NAME[n.split(".").pop()!] === t)),
    targets,
  };
}

/** Turns PEFT tensors into the canonical adapter: checks, scale folded into B, q/k rows to the canonical basis. */
export function peftToAdapter(
  config: PeftConfig,
  tensors: Map<string, PeftTensor>,
  source: string,
  expect?: AdapterExpectations,
): { adapter: LoraAdapter; encoded: Uint8Array } {
  const fail = (problem: string): never => {
    throw new AdapterError(source, problem);
  };
  if (expect && config.baseModel) {
    const names = [expect.name, ...(expect.aliases ?? [])];
    if (!names.some((name) => baseName(name) === baseName(config.baseModel))) {
      const aliases = expect.aliases?.length
        ? ` (or its aliases ${expect.aliases.map((a) => JSON.stringify(a)).join(", ")})`
        : "";
      fail(
        `base model mismatch: trained on "${config.baseModel}", the loaded model is "${expect.name}"${aliases}; give the model that name as an alias if it is the same model`,
      );
    }
  }
  const found = new Map<string, { layer: number; target: LinearTarget; a?: PeftTensor; b?: PeftTensor }>();
  for (const [key, tensor] of tensors) {
    const match = KEY.exec(key);
    const unserved = UNSERVED_MODULES.find((m) => key.includes(`.${m}.`));
    if (!match && unserved)
      fail(`tensor ${key}: LoRA on ${unserved} is not supported (only the q,k,v,o,gate,up,down projections)`);
    if (!match)
      fail(`unexpected tensor ${key} (only lora_A/lora_B of the q,k,v,o,gate,up,down projections are supported)`);
    const [, layerText, , moduleName, which] = match!;
    const layer = Number(layerText);
    // PyTorch names the layers 0, 1, ...: "layers.00" would alias "layers.0" and one of them be dropped.
    if (String(layer) !== layerText)
      fail(`tensor ${key}: layer index ${layerText} is not written as PyTorch names layers`);
    // Checked before anything is sized by it: a layer index of 99,999,999 must not allocate that many layers.
    const layerLimit = expect ? expect.config.nLayers : MAX_LAYERS;
    if (layer >= layerLimit) {
      fail(
        `tensor ${key}: layer ${layer} is out of range (${expect ? "the model has" : "an adapter has at most"} ${layerLimit} layers)`,
      );
    }
    const target = TARGET_OF_NAME[moduleName];
    if (!config.targets(layer, target)) fail(`tensor ${key} targets ${moduleName}, which target_modules does not list`);
    const entry = found.get(`${layer}.${target}`) ?? { layer, target };
    entry[which === "A" ? "a" : "b"] = tensor;
    found.set(`${layer}.${target}`, entry);
  }
  if (found.size === 0) fail("no LoRA tensors in adapter_model.safetensors");
  const nLayers = expect ? expect.config.nLayers : Math.max(...[...found.values()].map((e) => e.layer)) + 1;
  const layers: Partial<Record<LinearTarget, LoraPair>>[] = Array.from({ length: nLayers }, () => ({}));
  let maxRank = 0;

  for (const { layer, target, a, b } of found.values()) {
    const moduleName = `model.layers.${layer}.${MODULE_OF_TARGET[target]}`;
    if (!a) fail(`missing lora_A for layer ${layer} ${target}_proj`);
    if (!b) fail(`missing lora_B for layer ${layer} ${target}_proj`);
    const rank = modulePatternValue(config.rankPattern, moduleName) ?? config.r;
    const alpha = modulePatternValue(config.alphaPattern, moduleName) ?? config.loraAlpha;
    if (expect && rank > expect.maxRank)
      fail(`rank ${rank} of layer ${layer} ${target}_proj exceeds the configured maximum ${expect.maxRank}`);
    const inDim = expect ? projectionShape(expect.config, target).inDim : a!.shape[1];
    const outDim = expect ? projectionShape(expect.config, target).outDim : b!.shape[0];
    if (!sameShape(a!.shape, [rank, inDim]))
      fail(`lora_A of layer ${layer} ${target}_proj has shape [${a!.shape}], expected [${rank}, ${inDim}]`);
    if (!sameShape(b!.shape, [outDim, rank]))
      fail(`lora_B of layer ${layer} ${target}_proj has shape [${b!.shape}], expected [${outDim}, ${rank}]`);
    if (!expect && Math.max(rank, inDim, outDim) > MAX_ADAPTER_DIM) {
      fail(
        `lora_A/lora_B of layer ${layer} ${target}_proj have shapes [${a!.shape}] and [${b!.shape}], over the ${MAX_ADAPTER_DIM} an adapter dimension may take`,
      );
    }
    const aData = valuesOf(a!);
    const bData = valuesOf(b!);
    if (!aData.every(Number.isFinite)) fail(`lora_A of layer ${layer} ${target}_proj contains NaN or infinite values`);
    if (!bData.every(Number.isFinite)) fail(`lora_B of layer ${layer} ${target}_proj contains NaN or infinite values`);

    const scale = config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
    // A huge lora_alpha (1e300) overflows B to Infinity in float32: every logit NaN, every token 0. Refuse it.
    let scaledB: Float32Array = bData.map((x) => x * scale);
    if (!scaledB.every(Number.isFinite)) {
      fail(
        `layer ${layer} ${target}_proj: lora_B scaled by lora_alpha ${alpha} / rank ${rank} (${scale}) overflows float32`,
      );
    }
    if (expect?.qkBasis === "rotate-half" && (target === "q" || target === "k")) {
      scaledB = unpermuteRotateHalfRows(scaledB, target === "q" ? expect.config.nHeads : expect.config.nKvHeads, rank);
    }
    layers[layer][target] = { rank, a: aData, b: scaledB };
    maxRank = Math.max(maxRank, rank);
  }
  const present = new Set(layers.flatMap((layer) => Object.keys(layer)));
  return withId({
    // Without a model, an adapter is read as one for a plain LLaMA (adapter inspect); the id then differs from
    // the one it gets against a model of another family.
    family: expect ? architectureOf(expect.config).family : "llama",
    baseModel: config.baseModel,
    rank: maxRank,
    alpha: config.loraAlpha,
    useRslora: config.useRslora,
    targets: LINEAR_TARGETS.filter((t) => present.has(t)),
    layers,
  });
}

function valuesOf(tensor: PeftTensor): Float32Array {
  return typeof tensor.data === "function" ? tensor.data() : tensor.data;
}

function sameShape(shape: number[], expected: number[]): boolean {
  return shape.length === expected.length && shape.every((d, i) => d === expected[i]);
}

function baseName(name: string): string {
  return name
    .replace(/[\\/]+$/, "")
    .split(/[\\/]/)
    .pop()!
    .toLowerCase();
}

/** The module name PEFT uses for a target, for writers (e.g. random adapters) that produce PEFT folders. */
export function peftTensorKey(layer: number, target: LinearTarget, which: "A" | "B"): string {
  return `base_model.model.model.layers.${layer}.${MODULE_OF_TARGET[target]}.lora_${which}.weight`;
}

/** The target_modules names of targets. */
export function peftModuleNames(targets: readonly LinearTarget[]): string[] {
  return targets.map((t) => MODULE_OF_TARGET[t].split(".")[1]);
}
