// Child process of adapter-set.ts: writes one set of random adapters into a disk-tier folder, then its manifest.
//   node make-adapters.ts <storeDir> '{"spec": AdapterSetSpec, "config": ModelConfig}'
import { writeFileSync } from "node:fs";
import { DiskTier } from "../../node/engine/runtime/adapter-store/disk-tier.ts";
import type { AdapterSetSpec } from "./adapter-set.ts";
import { manifestPath } from "./adapter-set.ts";
import type { ModelConfig } from "../../node/engine/model/config.ts";
import { randomLora } from "./random-adapters.ts";

const [storeDir, key] = process.argv.slice(2);
const { spec, config } = JSON.parse(key) as { spec: AdapterSetSpec; config: ModelConfig };
const disk = await DiskTier.open(storeDir);
const ids: string[] = [];
for (let i = 0; i < spec.count; i++) {
  const { encoded } = randomLora(config, { rank: spec.rank, seed: spec.seed + i, targets: spec.targets });
  ids.push(await disk.put(encoded));
}
writeFileSync(manifestPath(storeDir, spec.label), JSON.stringify({ key, ids }));
