// The benchmark's adapters in both peers' formats: random PEFT folders (ours) and the same A/B matrices as GGUF
// LoRA files (llama.cpp: tensors blk.N.<name>.weight.lora_a with ggml dims [in, r] and .lora_b [r, out], which
// are PEFT's row-major [r, in] and [out, r] as they are; scale alpha / r in both).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeRandomPeftAdapter } from "../../../node/engine/adapter/random-adapter.ts";
import { peftTensorKey } from "../../../node/engine/adapter/peft.ts";
import { readSafetensors } from "../../../node/engine/formats/safetensors.ts";
import { GGML_TYPE, GGUF_TENSOR, GGUF_TYPE } from "../../../node/engine/formats/gguf-types.ts";
import { writeGguf, type GgufTensorSource } from "../../../node/engine/formats/gguf-write.ts";
import { projectionShape, type LinearTarget, type ModelConfig } from "../../../node/engine/model/config.ts";

/** llama.cpp's tensor name (without .weight) of each target. */
const GGUF_NAME: Record<LinearTarget, keyof ReturnType<typeof GGUF_TENSOR.layer>> = {
  q: "wq",
  k: "wk",
  v: "wv",
  o: "wo",
  gate: "wGate",
  up: "wUp",
  down: "wDown",
};

export interface BenchAdapter {
  /** The PEFT folder (ours). */
  peft: string;
  /** The GGUF LoRA file (llama.cpp). */
  gguf: string;
}

/** `count` random adapters of `rank` on `targets`, written once under `dir` in both formats. */
export async function benchAdapters(
  dir: string,
  config: ModelConfig,
  modelName: string,
  count: number,
  rank: number,
  targets: readonly LinearTarget[],
): Promise<BenchAdapter[]> {
  const alpha = 2 * rank;
  const list: BenchAdapter[] = [];
  for (let i = 0; i < count; i++) {
    const peft = join(dir, `r${rank}-${targets.join("")}-${i}`);
    const gguf = `${peft}.gguf`;
    if (!existsSync(gguf)) {
      await writeRandomPeftAdapter(peft, config, { rank, alpha, targets, seed: 7000 + i, baseModel: modelName });
      const tensors = readSafetensors(readFileSync(join(peft, "adapter_model.safetensors")), peft);
      const sources: GgufTensorSource[] = [];
      for (let l = 0; l < config.nLayers; l++) {
        for (const target of targets) {
          const { inDim, outDim } = projectionShape(config, target);
          const name = GGUF_TENSOR.layer(l)[GGUF_NAME[target]];
          const a = tensors.get(peftTensorKey(l, target, "A"))!.data;
          const b = tensors.get(peftTensorKey(l, target, "B"))!.data;
          sources.push({ name: `${name}.lora_a`, dims: [inDim, rank], type: GGML_TYPE.F32, data: () => a });
          sources.push({ name: `${name}.lora_b`, dims: [rank, outDim], type: GGML_TYPE.F32, data: () => b });
        }
      }
      writeGguf(
        gguf,
        [
          ["general.architecture", { type: GGUF_TYPE.string, value: "llama" }],
          ["general.type", { type: GGUF_TYPE.string, value: "adapter" }],
          ["adapter.type", { type: GGUF_TYPE.string, value: "lora" }],
          ["adapter.lora.alpha", { type: GGUF_TYPE.float32, value: alpha }],
        ],
        sources,
      );
    }
    list.push({ peft, gguf });
  }
  return list;
}
