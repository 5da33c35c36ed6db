// Sets of random adapters in the engine's disk tier (.cache/bench/store/<model>/), made once and listed by a
// manifest per set. They are written by a child process, so that generating hundreds of megabytes of
// adapters leaves no trace in the benchmark process's resident memory.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CANONICAL_FORMAT } from "../../node/engine/adapter/canonical.ts";
import type { LinearTarget, ModelConfig } from "../../node/engine/model/config.ts";

export interface AdapterSetSpec {
  label: string;
  count: number;
  rank: number;
  targets?: LinearTarget[];
  seed: number;
}

export function manifestPath(storeDir: string, label: string): string {
  return join(storeDir, `set-${label}.json`);
}

/** The ids of a set, written into `storeDir` first when missing. Open the engine on storeDir afterwards. */
export function ensureAdapterSet(
  storeDir: string,
  config: ModelConfig,
  spec: AdapterSetSpec,
  log: (line: string) => void,
): string[] {
  const file = manifestPath(storeDir, spec.label);
  // The file format is part of the key: ids and files of an older format are made again.
  const key = JSON.stringify({ format: CANONICAL_FORMAT, spec, config });
  const read = (): string[] | null => {
    if (!existsSync(file)) return null;
    const saved = JSON.parse(readFileSync(file, "utf8")) as { key: string; ids: string[] };
    const complete = saved.ids.every((id) => existsSync(join(storeDir, id.slice(2) + ".olora")));
    return saved.key === key && complete ? saved.ids : null;
  };
  const ready = read();
  if (ready) return ready;
  const started = performance.now();
  const child = spawnSync(process.execPath, [join(import.meta.dirname, "make-adapters.ts"), storeDir, key], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (child.status !== 0) throw new Error(`make-adapters.ts failed (${child.status ?? child.signal})`);
  log(`wrote ${spec.count} adapters (${spec.label}) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const ids = read();
  if (!ids) throw new Error(`make-adapters.ts left no complete manifest at ${file}`);
  return ids;
}
