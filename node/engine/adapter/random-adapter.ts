import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeSafetensors } from "../formats/safetensors.ts";
import { LINEAR_TARGETS, projectionShape, type LinearTarget, type ModelConfig } from "../model/config.ts";
import { createRng } from "../sampling/rng.ts";
import { peftModuleNames, peftTensorKey } from "./peft.ts";

export interface RandomAdapterOptions {
  rank: number;
  alpha?: number;
  targets?: readonly LinearTarget[];
  seed: number;
  /** Written as base_model_name_or_path. */
  baseModel: string;
  useRslora?: boolean;
}

/**
 * Writes a random PEFT LoRA folder for a model shape, for tests and benchmarks. Unlike PEFT's training
 * init (B = 0) both A and B are random, so the adapter changes the output: A ~ U(-1, 1)/sqrt(in),
 * B ~ U(-1, 1) x 0.02, so that with the scale the update stays a small fraction of the base projection.
 */
export async function writeRandomPeftAdapter(
  dir: string,
  config: ModelConfig,
  options: RandomAdapterOptions,
): Promise<void> {
  const targets = options.targets ?? LINEAR_TARGETS;
  const rng = createRng(options.seed);
  const uniform = (n: number, scale: number): Float32Array =>
    Float32Array.from({ length: n }, () => (2 * rng() - 1) * scale);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let layer = 0; layer < config.nLayers; layer++) {
    for (const target of LINEAR_TARGETS.filter((t) => targets.includes(t))) {
      const { inDim, outDim } = projectionShape(config, target);
      tensors.set(peftTensorKey(layer, target, "A"), {
        shape: [options.rank, inDim],
        data: uniform(options.rank * inDim, 1 / Math.sqrt(inDim)),
      });
      tensors.set(peftTensorKey(layer, target, "B"), {
        shape: [outDim, options.rank],
        data: uniform(outDim * options.rank, 0.02),
      });
    }
  }
  await mkdir(dir, { recursive: true });
  const adapterConfig = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    r: options.rank,
    lora_alpha: options.alpha ?? 2 * options.rank,
    target_modules: peftModuleNames(LINEAR_TARGETS.filter((t) => targets.includes(t))),
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: options.useRslora ?? false,
    base_model_name_or_path: options.baseModel,
  };
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify(adapterConfig, null, 2) + "\n");
  await writeFile(join(dir, "adapter_model.safetensors"), writeSafetensors(tensors));
}
