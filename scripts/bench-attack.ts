// Issue 13's figures: an honest request's latency on an idle node and under 3 identities x 32 streams (with owners
// and the step cost cap: the median of 5 requests against the median of 5 idle; with owners and no cap, without owners) and the flood's aggregate tok/s meanwhile, the event loop while long prompts are tokenized, a 20,000-request flood answered busy, and an
// adapter fetch with a stalling peer ranked first.
// stories260K on one backend (default cpu); writes bench/attack.json and prints a Markdown table.
//   npm run bench:attack [-- --backend cpu|simd|webgpu] [--max-running 64] [--slowdown 2]
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { EngineBusyError } from "../node/engine/errors.ts";
import { openEngine, type BackendChoice, type Engine, type EngineRequest } from "../node/engine/index.ts";
import { fetchWithStaller } from "./bench/attack-fetch.ts";
import { scriptArgs } from "./script-args.ts";

const values = scriptArgs(
  "The node under attack: an honest request's latency beside flooding identities, and an adapter fetch with a " +
    "staller ranked first.",
  "npm run bench:attack -- [--backend cpu|simd|webgpu] [--max-running N] [--slowdown X] [--flood-first N]",
  {
    backend: { type: "string", help: "the engine's backend (default cpu)" },
    "max-running": { type: "string", help: "the engine's most running sequences (default 64)" },
    slowdown: { type: "string", help: "a shared step's most cost, times a lone step's (default 2)" },
    "flood-first": { type: "string", help: "tokens the flood generates before the honest request comes (default 256)" },
  },
);
const backend = (values.backend ?? "cpu") as BackendChoice;
const maxRunning = Number(values["max-running"] ?? 64);
const slowdown = Number(values.slowdown ?? 2);
const floodFirst = Number(values["flood-first"] ?? 256);
const root = join(import.meta.dirname, "..");
const PROSE = "Once upon a time there was a little dog named Max who loved the sun. ";
const honest: EngineRequest = { adapterId: null, prompt: "Lily saw a", maxTokens: 16, temperature: 0, owner: "alice" };

async function open(maxPromptBytes?: number, stepSlowdown = slowdown) {
  const model = join(root, "models/stories260K");
  const scheduler = { maxRunning, slowdown: stepSlowdown };
  return openEngine({ model, backend, numBlocks: 1024, maxPromptBytes, scheduler });
}

/**
 * Wall time and steps of one request from submit to end, the largest step (tokens) meanwhile, and the others' work
 * meanwhile: tokens they generated and tokens they fed (prefill and decode), per second. Past giveUpAfter steps,
 * onLong runs (once).
 */
async function measure(engine: Engine, request: EngineRequest, giveUpAfter = Infinity, onLong = (): void => {}) {
  let steps = 0;
  let sampled = 0;
  let fed = 0;
  let largestStep = 0;
  const off = engine.on("step", (step) => {
    sampled += step.sampled;
    fed += step.tokens;
    largestStep = Math.max(largestStep, step.tokens);
    if (++steps === giveUpAfter + 1) onLong();
  });
  const started = performance.now();
  const { tokenIds, promptTokenIds } = await engine.submit(request).result;
  off();
  const ms = performance.now() - started;
  const perSecond = (tokens: number): number => (1000 * tokens) / ms;
  return {
    ms,
    steps,
    largestStep,
    othersGeneratedPerS: perSecond(sampled - tokenIds.length),
    othersFedPerS: perSecond(fed - tokenIds.length - promptTokenIds.length),
  };
}

type Measured = Awaited<ReturnType<typeof measure>>;

/** The run of median wall time. */
const median = (runs: Measured[]): Measured => [...runs].sort((a, b) => a.ms - b.ms)[Math.floor(runs.length / 2)];

/**
 * The honest request idle (median of 5), then under 96 streams from 3 owners (or from nobody: one queue), `runs`
 * times one after the other while the flood goes on (median). One run of 16 tokens on lavapipe varies by 2x.
 */
async function flood(owned: boolean, stepSlowdown = slowdown, runs = 1) {
  const { engine, close } = await open(undefined, stepSlowdown);
  try {
    await measure(engine, honest); // warm-up
    const idleRuns: Measured[] = [];
    for (let i = 0; i < 5; i++) idleRuns.push(await measure(engine, honest));
    const idle = median(idleRuns);
    const stop = new AbortController();
    const attack = Array.from({ length: 96 }, (_, i) =>
      engine.submit({
        adapterId: null,
        prompt: PROSE.repeat(3),
        maxTokens: 300,
        ignoreEos: true,
        owner: owned ? `sybil-${i % 3}` : undefined,
        signal: stop.signal,
      }),
    );
    // The flood reaches its steady state before the honest request comes (whatever batch the cap gives it, it is
    // decoding): floodFirst tokens generated. Its tok/s while the honest request runs is then comparable across runs.
    let generated = 0;
    await engine.once("step", ({ sampled }) => (generated += sampled) >= floodFirst);
    const giveUp = 10 * idle.steps;
    const attackedRuns: Measured[] = [];
    while (attackedRuns.length < runs && !stop.signal.aborted) {
      const request = owned ? honest : { ...honest, owner: undefined };
      attackedRuns.push(await measure(engine, request, giveUp, () => stop.abort()));
    }
    const gaveUp = stop.signal.aborted;
    stop.abort();
    await Promise.all(attack.map((s) => s.result));
    return { idle, attacked: median(attackedRuns), overIdle: attackedRuns.map((run) => run.ms / idle.ms), gaveUp };
  } finally {
    await close();
  }
}

/** Event-loop delay p99 (ms) while four 60 KiB prompts are tokenized and refused, and one honest request runs. */
async function longPrompts() {
  const { engine, close } = await open(64 * 1024);
  try {
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    const text = PROSE.repeat(900); // ~62 KiB
    const attacks = Array.from({ length: 4 }, () => engine.submit({ adapterId: null, prompt: text, maxTokens: 8 }));
    const honestRun = await measure(engine, honest);
    await Promise.all(attacks.map((s) => s.result.catch(() => {})));
    histogram.disable();
    return { loopP99Ms: histogram.percentile(99) / 1e6, honestMs: honestRun.ms };
  } finally {
    await close();
  }
}

/** 20,000 submits from 3 identities: how many are held, how many answered busy, at what cost each. */
async function manyRequests() {
  const { engine, close } = await open();
  try {
    const stop = new AbortController();
    globalThis.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    let busy = 0;
    const started = performance.now();
    for (let i = 0; i < 20_000; i++) {
      try {
        engine.submit({
          adapterId: null,
          tokenIds: [1, 2],
          maxTokens: 100,
          owner: `sybil-${i % 3}`,
          signal: stop.signal,
        });
      } catch (error) {
        if (!(error instanceof EngineBusyError)) throw error;
        busy++;
      }
    }
    const usPerSubmit = (1000 * (performance.now() - started)) / 20_000;
    const held = engine.stats().admission;
    const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    stop.abort();
    return { held: held.requests, busy, usPerSubmit, heapMiB };
  } finally {
    await close();
  }
}

const owned = await flood(true, slowdown, 5);
const uncapped = await flood(true, Infinity);
const unowned = await flood(false);
const prompts = await longPrompts();
const many = await manyRequests();
const fetched = await fetchWithStaller(5, 3000);
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const figures = {
  backend,
  maxRunning,
  slowdown,
  flood_first_tokens: floodFirst,
  honest_idle_ms: round(owned.idle.ms),
  honest_idle_steps: owned.idle.steps,
  honest_3x32_owned_ms: round(owned.attacked.ms),
  honest_3x32_owned_steps: owned.attacked.steps,
  honest_3x32_owned_over_idle_ms: round(owned.attacked.ms / owned.idle.ms, 2),
  honest_3x32_owned_over_idle_steps: round(owned.attacked.steps / owned.idle.steps, 2),
  honest_3x32_owned_over_idle_ms_each: owned.overIdle.map((x) => round(x, 2)).join(" "),
  step_tokens_max_3x32_owned: owned.attacked.largestStep,
  flood_3x32_owned_generated_tok_s: round(owned.attacked.othersGeneratedPerS),
  flood_3x32_owned_fed_tok_s: round(owned.attacked.othersFedPerS),
  honest_3x32_uncapped_ms: round(uncapped.attacked.ms),
  honest_3x32_uncapped_over_idle_ms: round(uncapped.attacked.ms / uncapped.idle.ms, 2),
  step_tokens_max_3x32_uncapped: uncapped.attacked.largestStep,
  flood_3x32_uncapped_generated_tok_s: round(uncapped.attacked.othersGeneratedPerS),
  flood_3x32_uncapped_fed_tok_s: round(uncapped.attacked.othersFedPerS),
  honest_3x32_unowned_steps: `${unowned.gaveUp ? ">" : ""}${unowned.attacked.steps}`,
  honest_3x32_unowned_ms: round(unowned.attacked.ms),
  loop_p99_ms_4x60KiB_prompts: round(prompts.loopP99Ms),
  honest_ms_during_long_prompts: round(prompts.honestMs),
  flood_20000_held: many.held,
  flood_20000_busy: many.busy,
  flood_us_per_submit: round(many.usPerSubmit, 2),
  flood_heap_mib: round(many.heapMiB),
  fetch_4MiB_idle_ms: round(fetched.idleMs),
  fetch_4MiB_staller_first_ms: round(fetched.withStallerMs),
  fetch_first_byte_deadline_ms: fetched.firstByteMs,
  fetch_timeout_ms: fetched.timeoutMs,
};
await mkdir(join(root, "bench"), { recursive: true });
await writeFile(join(root, "bench/attack.json"), JSON.stringify(figures, null, 2) + "\n");
console.log("| figure | value |\n|---|---|");
for (const [k, v] of Object.entries(figures)) console.log(`| \`${k}\` | ${v} |`);
