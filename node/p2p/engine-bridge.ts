// The engine as the network sees it: what to announce (adapters and tiers, queue, free slots), where adapter
// bytes come from when a peer asks, and where fetched ones go. Only this file knows the Engine's shape.
import type { Engine } from "../engine/runtime/engine.ts";
import type { EngineEvents } from "../engine/runtime/types.ts";
import type { AdapterSink } from "./adapter-fetcher.ts";
import type { AdapterBytesSource } from "./adapter-protocol.ts";
import type { AdapterAvailability } from "./announcement.ts";
import type { NodeState } from "./announcer.ts";

/** What the announcer reads from the engine. */
export function engineNodeState(engine: Engine): NodeState {
  return {
    adapters: (): AdapterAvailability[] =>
      engine.adapters.list().map((a) => ({ id: a.id as AdapterAvailability["id"], tier: a.tier })),
    load: () => {
      const stats = engine.stats();
      return {
        queueDepth: stats.queue.waiting + stats.queue.running,
        freeSlots: stats.slots.filter((s) => s.pins === 0 && s.state !== "loading").length,
      };
    },
    onChange: (listener) => {
      const offs = TIER_EVENTS.map((name) => engine.on(name, listener));
      return () => offs.forEach((off) => off());
    },
  };
}

/** The engine events after which an adapter's tier differs. */
const TIER_EVENTS: readonly (keyof EngineEvents)[] = [
  "adapter:registered",
  "adapter:loaded",
  "adapter:evicted",
  "adapter:removed",
];

/** Serves adapter bytes from the engine's disk tier (checked against their id before they are sent). */
export function engineAdapterSource(engine: Engine): AdapterBytesSource {
  return { read: (id: string) => engine.adapters.readBytes(id) };
}

/** Where fetched adapters go: the engine's disk (and host) tier. */
export function engineAdapterSink(engine: Engine): AdapterSink {
  return {
    has: (id) => engine.adapters.has(id),
    add: (bytes) => engine.adapters.add(bytes),
  };
}
