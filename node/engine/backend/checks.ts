import type { LoraAdapter } from "../adapter/lora.ts";
import { architectureOf, projectionShape, type LinearTarget, type ModelConfig } from "../model/config.ts";
import type { BackendOptions, SequenceStep } from "./backend.ts";

/**
 * The preconditions of Backend.forward, shared by every backend: a violation is a bug in the caller
 * (the scheduler), so it throws at once instead of reading another sequence's cache.
 */
export function checkSteps(steps: readonly SequenceStep[], config: ModelConfig, options: BackendOptions): void {
  if (steps.length === 0) throw new RangeError("forward needs at least one sequence");
  steps.forEach((step, s) => {
    if (step.tokens.length === 0) throw new RangeError(`sequence ${s}: no tokens`);
    for (const token of step.tokens) {
      if (!Number.isInteger(token) || token < 0 || token >= config.vocabSize)
        throw new RangeError(`sequence ${s}: token ${token} outside the vocabulary (0..${config.vocabSize - 1})`);
    }
    const end = step.position + step.tokens.length;
    if (!Number.isInteger(step.position) || step.position < 0 || end > config.maxSeqLen)
      throw new RangeError(
        `sequence ${s}: positions ${step.position}..${end - 1} outside the context (${config.maxSeqLen})`,
      );
    const needed = Math.ceil(end / options.blockSize);
    if (step.blockTable.length < needed)
      throw new RangeError(
        `sequence ${s}: block table has ${step.blockTable.length} blocks, positions up to ${end - 1} need ${needed}`,
      );
    for (const block of step.blockTable) {
      if (!Number.isInteger(block) || block < 0 || block >= options.numBlocks)
        throw new RangeError(`sequence ${s}: KV block ${block} outside the pool (0..${options.numBlocks - 1})`);
    }
    if (step.slot !== -1 && (!Number.isInteger(step.slot) || step.slot < 0 || step.slot >= options.adapterSlots))
      throw new RangeError(`sequence ${s}: adapter slot ${step.slot} outside 0..${options.adapterSlots - 1}`);
  });
}

/** An adapter fits a slot when it is for the model's architecture, its rank within the slot's, its pairs the model's shapes. */
export function checkAdapterFits(adapter: LoraAdapter, config: ModelConfig, options: BackendOptions): void {
  const family = architectureOf(config).family;
  if ((adapter.family ?? "llama") !== family)
    throw new RangeError(`adapter ${adapter.id}: made for a ${adapter.family} model, this is a ${family} model`);
  if (adapter.rank > options.maxRank)
    throw new RangeError(`adapter ${adapter.id}: rank ${adapter.rank} exceeds the slot rank ${options.maxRank}`);
  if (adapter.layers.length !== config.nLayers)
    throw new RangeError(`adapter ${adapter.id}: ${adapter.layers.length} layers, the model has ${config.nLayers}`);
  adapter.layers.forEach((layer, l) => {
    for (const [target, pair] of Object.entries(layer)) {
      const { inDim, outDim } = projectionShape(config, target as LinearTarget);
      if (pair.a.length !== pair.rank * inDim || pair.b.length !== outDim * pair.rank)
        throw new RangeError(`adapter ${adapter.id}: layer ${l} ${target} does not fit [${outDim}, ${inDim}]`);
    }
  });
}
