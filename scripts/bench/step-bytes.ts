// Bytes of weights one decode step reads, in the file's precision: every layer matrix and norm, the final norm
// and the classifier (an untied embedding table is read one row per token, not counted). What
// bandwidth_util_b1 holds against the copy bandwidth.
import { matrixBytes, weightBytes } from "../../node/engine/formats/weight-codec.ts";
import type { ModelWeights } from "../../node/engine/model/weights.ts";

export function decodeStepBytes(weights: ModelWeights): number {
  const untiedEmbedding = weights.classifier === weights.tokenEmbedding ? 0 : matrixBytes(weights.tokenEmbedding);
  return weightBytes(weights) - untiedEmbedding;
}
