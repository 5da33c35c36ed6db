// RoPE frequencies: the base frequencies of each pair, and Llama 3's rope_scaling, which divides them.
import { architectureOf, type ModelConfig } from "./config.ts";

/** rope_scaling of type "llama3" (transformers' _compute_llama3_parameters). */
export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/**
 * Llama 3's scaling as one divisor per pair, the form llama.cpp stores in rope_freqs.weight (float32, so the
 * divisors are rounded to float32 here too: both file forms then give one config). transformers keeps
 * inv_freq where the wavelength 2π/inv_freq is under original/highFreqFactor, divides it by factor where the
 * wavelength is over original/lowFreqFactor, and in between blends inv/factor and inv by
 * smooth = (original/wavelength - low) / (high - low); that blend is inv / (1 / ((1 - smooth)/factor + smooth)).
 */
export function llama3FreqFactors(headDim: number, theta: number, s: Llama3RopeScaling): number[] {
  const lowWavelength = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelength = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return Array.from({ length: headDim / 2 }, (_, i) => {
    const wavelength = (2 * Math.PI) / Math.pow(theta, (-2 * i) / headDim);
    if (wavelength < highWavelength) return 1;
    if (wavelength > lowWavelength) return Math.fround(s.factor);
    const smooth =
      (s.originalMaxPositionEmbeddings / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return Math.fround(1 / ((1 - smooth) / s.factor + smooth));
  });
}

/**
 * The angle per position of each RoPE pair i (in the canonical interleaved basis, the pair (2i, 2i + 1)):
 * theta^(-2i/headDim), divided by the pair's frequency factor when the model has them. In double precision,
 * as the engine's RoPE has always computed its angles (transformers computes them in float32).
 */
export function ropeInverseFrequencies(config: ModelConfig): Float64Array {
  const { headDim, ropeTheta } = config;
  const factors = architectureOf(config).ropeFreqFactors;
  return Float64Array.from(
    { length: headDim / 2 },
    (_, i) => Math.pow(ropeTheta, -(2 * i) / headDim) / (factors ? factors[i] : 1),
  );
}
