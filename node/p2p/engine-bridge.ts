// The engine as the network sees it: what to announce (adapters and tiers, queue, free slots), where adapter
// bytes come from when a peer asks, and where fetched ones go. Only this file knows the Engine's shape.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Engine } from "../engine/runtime/engine.ts";
import type { AdapterSink } from "./adapter-fetcher.ts";
import type { AdapterBytesSource } from "./adapter-protocol.ts";
import type { AdapterAvailability } from "./announcement.ts";
import type { NodeState } from "./announcer.ts";

/** What the announcer reads from the engine. */
export function engineNodeState(engine: Engine): NodeState {
  return {
    adapters: (): AdapterAvailability[] => engine.listAdapters().map((a) => ({ id: a.id as AdapterAvailability["id"], tier: a.tier })),
    load: () => {
      const stats = engine.stats();
      return {
        queueDepth: stats.queue.waiting + stats.queue.running,
        freeSlots: stats.slots.filter((s) => s.pins === 0 && s.state !== "loading").length,
      };
    },
  };
}

/**
 * Serves adapter bytes from the engine's disk tier. The runtime has no public "read canonical bytes" call yet,
 * so this reads the tier's file (`<dir>/<id without 0x>.olora`, written atomically by DiskTier.put). Each file is
 * hashed once before it is first served: a corrupted disk file must not get this node banned by its peers.
 */
export function engineAdapterSource(engine: Engine): AdapterBytesSource {
  const verified = new Set<string>();
  return {
    async read(id: string): Promise<Uint8Array | null> {
      const disk = engine.adapters.disk;
      if (!disk.has(id)) return null;
      let bytes: Uint8Array;
      try {
        bytes = await readFile(join(disk.dir, `${id.slice(2)}.olora`));
      } catch {
        return null;
      }
      if (!verified.has(id)) {
        if ("0x" + createHash("sha256").update(bytes).digest("hex") !== id) return null;
        verified.add(id);
      }
      return bytes;
    },
  };
}

/** Where fetched adapters go: the engine's disk (and host) tier. */
export function engineAdapterSink(engine: Engine): AdapterSink {
  return {
    has: (id) => engine.adapters.has(id),
    add: (bytes) => engine.addAdapter(bytes),
  };
}
