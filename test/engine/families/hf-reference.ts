// transformers' forward pass of the five families, transcribed from modeling_llama, modeling_mistral,
// modeling_qwen2, modeling_qwen3 and modeling_gemma2 and run on a Hugging Face folder as transformers reads it:
// config.json keys, safetensors names, q/k rows in their stored (rotate-half) order with rotate_half RoPE,
// Gemma's (1 + w) norms. Float64, the whole sequence at once, no KV cache. It shares nothing with the engine's
// loaders, canonical basis or backends, so the engine agreeing with it checks them all.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors } from "../../../node/engine/formats/safetensors.ts";

type Vec = Float64Array;

/** The logits of every position of `tokens` (rows of vocab_size). */
export function hfReferenceLogits(folder: string, tokens: readonly number[]): Vec[] {
  const cfg = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));
  const arch: string = cfg.architectures[0];
  const stored = readSafetensors(readFileSync(join(folder, "model.safetensors")), "reference");
  const t = (name: string): Vec => {
    const tensor = stored.get(name);
    if (!tensor) throw new Error(`reference: no tensor ${name}`);
    return Float64Array.from(tensor.data);
  };
  const gemma = arch === "Gemma2ForCausalLM";
  const H: number = cfg.hidden_size;
  const nH: number = cfg.num_attention_heads;
  const nKV: number = cfg.num_key_value_heads ?? nH;
  const hd: number = cfg.head_dim ?? H / nH;
  const L: number = cfg.num_hidden_layers;
  const eps: number = cfg.rms_norm_eps;
  const V: number = cfg.vocab_size;
  const T = tokens.length;
  const tied: boolean = cfg.tie_word_embeddings ?? gemma;

  // RMSNorm: x * rsqrt(mean(x^2) + eps) * w, Gemma's * (1 + w).
  const rmsnorm = (x: Vec, w: Vec): Vec => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const inv = 1 / Math.sqrt(ss / x.length + eps);
    return x.map((v, i) => v * inv * (gemma ? 1 + w[i] : w[i]));
  };
  // nn.Linear: y = x W^T (+ b), W [out, in].
  const linear = (x: Vec, w: Vec, b?: Vec): Vec => {
    const out = new Float64Array(w.length / x.length);
    for (let o = 0; o < out.length; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < x.length; i++) s += x[i] * w[o * x.length + i];
      out[o] = s;
    }
    return out;
  };

  // Rotary embedding: inv_freq = 1 / theta^(arange(0, hd, 2) / hd), rope_type "llama3" adjusted as
  // _compute_llama3_parameters does; emb = cat(freqs, freqs); q * cos + rotate_half(q) * sin.
  const theta: number = cfg.rope_theta ?? 10000;
  let invFreq = Array.from({ length: hd / 2 }, (_, i) => 1 / theta ** ((2 * i) / hd));
  const scaling = cfg.rope_scaling;
  if (scaling && (scaling.rope_type ?? scaling.type) === "llama3") {
    const { factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: old } = scaling;
    const lowWavelen = old / low;
    const highWavelen = old / high;
    invFreq = invFreq.map((inv) => {
      const wavelen = (2 * Math.PI) / inv;
      const scaled = wavelen > lowWavelen ? inv / factor : inv;
      const smooth = (old / wavelen - low) / (high - low);
      const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
      return medium ? ((1 - smooth) * scaled) / factor + smooth * scaled : scaled;
    });
  } else if (scaling) {
    throw new Error(`reference: rope_scaling ${JSON.stringify(scaling)}`);
  }
  const rotate = (x: Vec, heads: number, pos: number): Vec => {
    const out = new Float64Array(x.length);
    for (let h = 0; h < heads; h++) {
      const base = h * hd;
      for (let d = 0; d < hd; d++) {
        const angle = pos * invFreq[d % (hd / 2)];
        const rotated = d < hd / 2 ? -x[base + d + hd / 2] : x[base + d - hd / 2];
        out[base + d] = x[base + d] * Math.cos(angle) + rotated * Math.sin(angle);
      }
    }
    return out;
  };
  const headNorm = (x: Vec, heads: number, w: Vec): Vec => {
    const out = new Float64Array(x.length);
    for (let h = 0; h < heads; h++) out.set(rmsnorm(x.subarray(h * hd, (h + 1) * hd), w), h * hd);
    return out;
  };

  // The sliding window of each layer, as each model's attention sets it.
  const windowOf = (layer: number): number | null => {
    if (arch === "MistralForCausalLM") return cfg.sliding_window ?? null;
    if (gemma) {
      const types: string[] =
        cfg.layer_types ?? Array.from({ length: L }, (_, i) => ((i + 1) % 2 ? "sliding_attention" : "full_attention"));
      return types[layer] === "sliding_attention" ? cfg.sliding_window : null;
    }
    if (cfg.use_sliding_window) throw new Error("reference: Qwen sliding windows are not transcribed");
    return null;
  };
  const attnScaling = gemma ? cfg.query_pre_attn_scalar ** -0.5 : 1 / Math.sqrt(hd);
  const attnCap: number | null = gemma ? cfg.attn_logit_softcapping : null;
  const finalCap: number | null = gemma ? cfg.final_logit_softcapping : null;
  const act = (g: number): number =>
    gemma ? 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g ** 3))) : g / (1 + Math.exp(-g));

  const embed = t("model.embed_tokens.weight");
  const normalizer = gemma ? Math.fround(Math.sqrt(H)) : 1; // a tensor of the activations' dtype: float32 here
  let hidden: Vec[] = tokens.map((tok) => embed.slice(tok * H, (tok + 1) * H).map((v) => v * normalizer));
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    const bias = (name: string): Vec | undefined =>
      stored.has(`${p}.self_attn.${name}.bias`) ? t(`${p}.self_attn.${name}.bias`) : undefined;
    const [wq, wk, wv, wo] = ["q_proj", "k_proj", "v_proj", "o_proj"].map((n) => t(`${p}.self_attn.${n}.weight`));
    const qs: Vec[] = [];
    const ks: Vec[] = [];
    const vs: Vec[] = [];
    hidden.forEach((x, pos) => {
      const h = rmsnorm(x, t(`${p}.input_layernorm.weight`));
      let q = linear(h, wq, bias("q_proj"));
      let k = linear(h, wk, bias("k_proj"));
      if (arch === "Qwen3ForCausalLM") {
        q = headNorm(q, nH, t(`${p}.self_attn.q_norm.weight`));
        k = headNorm(k, nKV, t(`${p}.self_attn.k_norm.weight`));
      }
      qs.push(rotate(q, nH, pos));
      ks.push(rotate(k, nKV, pos));
      vs.push(linear(h, wv, bias("v_proj")));
    });
    const window = windowOf(l);
    hidden = hidden.map((x, pos) => {
      const attended = new Float64Array(nH * hd);
      for (let h = 0; h < nH; h++) {
        const kvh = Math.floor(h / (nH / nKV));
        const scores: number[] = [];
        const keys: number[] = [];
        for (let j = 0; j <= pos; j++) {
          if (window !== null && pos - j >= window) continue; // masked: kv_idx <= q_idx - sliding_window
          let s = 0;
          for (let d = 0; d < hd; d++) s += qs[pos][h * hd + d] * ks[j][kvh * hd + d];
          s *= attnScaling;
          if (attnCap) s = attnCap * Math.tanh(s / attnCap);
          scores.push(s);
          keys.push(j);
        }
        const max = Math.max(...scores);
        const weights = scores.map((s) => Math.exp(s - max));
        const sum = weights.reduce((a, b) => a + b, 0);
        keys.forEach((j, n) => {
          for (let d = 0; d < hd; d++) attended[h * hd + d] += (weights[n] / sum) * vs[j][kvh * hd + d];
        });
      }
      let out = linear(attended, wo);
      if (gemma) out = rmsnorm(out, t(`${p}.post_attention_layernorm.weight`));
      const y = x.map((v, i) => v + out[i]);
      const h = rmsnorm(y, t(`${p}.${gemma ? "pre_feedforward_layernorm" : "post_attention_layernorm"}.weight`));
      const gate = linear(h, t(`${p}.mlp.gate_proj.weight`));
      const up = linear(h, t(`${p}.mlp.up_proj.weight`));
      let mlp = linear(
        gate.map((g, i) => act(g) * up[i]),
        t(`${p}.mlp.down_proj.weight`),
      );
      if (gemma) mlp = rmsnorm(mlp, t(`${p}.post_feedforward_layernorm.weight`));
      return y.map((v, i) => v + mlp[i]);
    });
  }
  const head = tied ? embed : t("lm_head.weight");
  return hidden.map((x) => {
    const logits = linear(rmsnorm(x, t("model.norm.weight")), head);
    if (logits.length !== V) throw new Error("reference: vocab size");
    return finalCap ? logits.map((v) => finalCap * Math.tanh(v / finalCap)) : logits;
  });
}
