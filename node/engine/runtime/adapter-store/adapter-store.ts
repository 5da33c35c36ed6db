import { decodeAdapter } from "../../adapter/canonical.ts";
import type { LoraAdapter } from "../../adapter/lora.ts";
import { loadPeftAdapter, type AdapterExpectations } from "../../adapter/peft.ts";
import type { Backend } from "../../backend/backend.ts";
import { checkAdapterFits } from "../../backend/checks.ts";
import { AdapterError } from "../../errors.ts";
import type { DeviceLock } from "../device-lock.ts";
import { Emitter } from "../../emitter.ts";
import type { AdapterEvents, AdapterInfo, AdapterListing, AdapterTier, EngineStats, SlotStats } from "../types.ts";
import { DiskTier } from "./disk-tier.ts";
import { HostTier } from "./host-tier.ts";
import { SlotPool } from "./slot-pool.ts";

export interface AdapterStoreOptions {
  /** Folder of the disk tier. */
  dir: string;
  /** Host tier budget in bytes of canonical encoding. */
  hostBudgetBytes: number;
  backend: Backend;
  lock: DeviceLock;
  /** Model name and q/k basis that imported PEFT folders must match. */
  modelName: string;
  /** Other names PEFT folders may give as base_model_name_or_path for this model. */
  modelAliases?: readonly string[];
  qkBasis: AdapterExpectations["qkBasis"];
  /** Disk reads started ahead for adapters that wait beyond the slots' reach. */
  prefetchAhead?: number;
}

/**
 * The three adapter tiers behind one door: disk (every registered adapter), host memory (LRU by bytes) and
 * the backend's slots (fixed count; pinned while a running sequence uses them). The engine tells it, every
 * step, which adapters its queue wants in priority order (`want`); the store then moves the first ones
 * towards the slots in the background, disk to host to slot, and never evicts a pinned or wanted-sooner one.
 * Every change of tier is an event (the engine forwards them: announcements and metrics follow the tiers).
 */
export class AdapterStore extends Emitter<AdapterEvents> {
  readonly disk: DiskTier;
  readonly host: HostTier;
  readonly slots: SlotPool;
  #backend: Backend;
  #lock: DeviceLock;
  #expect: AdapterExpectations;
  #prefetchAhead: number;
  /** Disk reads in flight, shared by slot loads and host prefetches. */
  #reads = new Map<string, Promise<LoraAdapter>>();
  /** Slot loads in flight: resolve to the slot. */
  #loads = new Map<string, Promise<number>>();
  /** Registrations in flight, one per id: concurrent imports of one adapter share its write and its event. */
  #registering = new Map<string, Promise<AdapterInfo>>();
  #closed = false;

  private constructor(disk: DiskTier, options: AdapterStoreOptions) {
    super();
    this.disk = disk;
    disk.onLost = (id) => this.#lost(id);
    this.host = new HostTier(options.hostBudgetBytes, (id) => this.emit("adapter:evicted", { id, from: "host" }));
    this.slots = new SlotPool(options.backend.options.adapterSlots);
    this.#backend = options.backend;
    this.#lock = options.lock;
    const config = options.backend.config;
    this.#expect = {
      config,
      name: options.modelName,
      aliases: options.modelAliases,
      qkBasis: options.qkBasis,
      maxRank: options.backend.options.maxRank,
    };
    this.#prefetchAhead = options.prefetchAhead ?? 2 * this.slots.size;
  }

  static async open(options: AdapterStoreOptions): Promise<AdapterStore> {
    return new AdapterStore(await DiskTier.open(options.dir), options);
  }

  /** Registered (present in the disk tier). */
  has(id: string): boolean {
    return this.disk.has(id);
  }

  /** Imports a PEFT folder: checked against the model, stored on disk by id, kept in the host tier. */
  async importPeft(dir: string): Promise<AdapterInfo> {
    const { adapter, encoded } = await loadPeftAdapter(dir, this.#expect);
    return this.#register(adapter, encoded);
  }

  /** Registers canonical bytes (from a peer, or built in memory): decoded, checked against the model, stored. */
  async add(encoded: Uint8Array, source = "canonical bytes"): Promise<AdapterInfo> {
    const adapter = decodeAdapter(encoded, source);
    try {
      checkAdapterFits(adapter, this.#expect.config, this.#backend.options);
    } catch (error) {
      throw new AdapterError(source, (error as Error).message);
    }
    return this.#register(adapter, encoded);
  }

  #register(adapter: LoraAdapter, encoded: Uint8Array): Promise<AdapterInfo> {
    const pending = this.#registering.get(adapter.id);
    if (pending) return pending;
    const registering = (async () => {
      const known = this.disk.has(adapter.id);
      await this.disk.put(encoded);
      this.host.put(adapter.id, adapter, encoded.length);
      const info: AdapterInfo = { id: adapter.id, rank: adapter.rank, bytes: encoded.length };
      if (!known) this.emit("adapter:registered", info);
      return info;
    })().finally(() => this.#registering.delete(adapter.id));
    this.#registering.set(adapter.id, registering);
    return registering;
  }

  /**
   * The disk tier found an adapter's file deleted or corrupted: it is no longer registered. It leaves the host
   * tier (a slot a running sequence pins stays until unpinned) and listeners hear it removed, so the node stops
   * announcing what it cannot serve.
   */
  #lost(id: string): void {
    this.host.delete(id);
    this.emit("adapter:removed", { id });
  }

  /** The canonical bytes of a registered adapter (what peers are sent), or null when absent or corrupted. */
  readBytes(id: string): Promise<Uint8Array | null> {
    return this.disk.readBytes(id);
  }

  tierOf(id: string): AdapterTier | null {
    if (this.slots.readySlot(id) >= 0) return "gpu";
    if (this.host.has(id)) return "host";
    return this.disk.has(id) ? "disk" : null;
  }

  /** Every registered adapter, its tier and size (what a node announces). */
  list(): AdapterListing[] {
    return [...this.disk.ids()].map((id) => ({ id, tier: this.tierOf(id)!, bytes: this.disk.sizeOf(id)! }));
  }

  /** The slot holding the adapter ready for use, or -1. */
  readySlot(id: string): number {
    return this.slots.readySlot(id);
  }

  /** A load of the adapter into a slot is in flight. */
  isLoading(id: string): boolean {
    return this.slots.isLoading(id);
  }

  /** Pins a ready adapter for a running sequence; returns its slot. */
  pin(id: string): number {
    const slot = this.slots.readySlot(id);
    if (slot < 0) throw new Error(`adapter ${id} is not in a slot`);
    this.slots.pin(slot);
    return slot;
  }

  unpin(slot: number): void {
    this.slots.unpin(slot);
  }

  /**
   * The queue's adapters in priority order (oldest request first, each id once). The first ones that the
   * unpinned slots can hold are loaded into slots (evicting only adapters not among them); the next few are
   * read from disk into the host tier ahead of time. Returns at once; loads finish in the background.
   */
  want(ids: Iterable<string>): void {
    if (this.#closed) return;
    let room = this.slots.unpinned;
    const keep = new Set<string>();
    const toLoad: string[] = [];
    let ahead = 0;
    let aheadBytes = 0;
    for (const id of ids) {
      const slot = this.slots.slotOf(id);
      if (slot >= 0 && this.slots.pins(slot) > 0) continue; // pinned: takes no room from the others
      if (room > 0) {
        // Among the first the unpinned slots can hold: keep it, or bring it in.
        keep.add(id);
        if (slot < 0) toLoad.push(id);
        room--;
      } else if (slot >= 0) {
        continue; // resident but wanted later than those that fill the slots: it may be evicted for them
      } else if (ahead < this.#prefetchAhead && !this.host.has(id)) {
        // Read ahead into the host tier, within half its budget so the reads do not evict each other.
        aheadBytes += this.disk.sizeOf(id) ?? 0;
        if (aheadBytes > this.host.budgetBytes / 2) continue;
        ahead++;
        this.#read(id).catch(() => {}); // a failure surfaces when it is loaded
      }
    }
    for (const id of toLoad) {
      const slot = this.slots.victim(keep);
      if (slot < 0) break;
      this.#startLoad(id, slot).catch(() => {});
    }
  }

  /** Makes an adapter resident in a slot now (the admin "load"); resolves to its slot. */
  async load(id: string): Promise<number> {
    if (!this.disk.has(id)) throw new AdapterError(id, "is not registered");
    const ready = this.slots.readySlot(id);
    if (ready >= 0) return ready;
    const loading = this.#loads.get(id);
    if (loading) return loading;
    const slot = this.slots.victim(new Set());
    if (slot < 0) throw new AdapterError(id, `no slot is free: all ${this.slots.size} are pinned or loading`);
    return this.#startLoad(id, slot);
  }

  /** Drops an adapter from its slot and the host tier (it stays registered on disk). Refused while in use. */
  async unload(id: string): Promise<void> {
    const loading = this.#loads.get(id);
    if (loading) await loading.catch(() => {});
    const slot = this.slots.slotOf(id);
    if (slot >= 0) {
      const pins = this.slots.pins(slot);
      if (pins > 0) throw new AdapterError(id, `is in use by ${pins} running sequence(s)`);
      this.slots.clear(slot);
      this.emit("adapter:evicted", { id, from: "gpu" });
    }
    if (this.host.has(id)) {
      this.host.delete(id);
      this.emit("adapter:evicted", { id, from: "host" });
    }
  }

  /** Unloads an adapter and deletes it from the disk tier: it is no longer registered. Refused while in use. */
  async remove(id: string): Promise<void> {
    if (!this.disk.has(id)) throw new AdapterError(id, "is not registered");
    await this.unload(id);
    await this.disk.remove(id);
    this.emit("adapter:removed", { id });
  }

  slotStats(): SlotStats[] {
    return this.slots.entries();
  }

  tierStats(): EngineStats["tiers"] {
    return {
      disk: { adapters: this.disk.count, bytes: this.disk.bytes },
      host: { adapters: this.host.count, bytes: this.host.bytes, budgetBytes: this.host.budgetBytes },
      gpu: { adapters: this.slots.entries().filter((s) => s.state === "ready").length, slots: this.slots.size },
    };
  }

  /** Stops starting loads and waits for those in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#loads.values()]);
  }

  #startLoad(id: string, slot: number): Promise<number> {
    const previous = this.slots.entries()[slot].adapterId;
    this.slots.beginLoad(slot, id);
    if (previous !== null) this.emit("adapter:evicted", { id: previous, from: "gpu" });
    const startedAt = performance.now();
    const load = (async () => {
      try {
        const adapter = this.host.get(id) ?? (await this.#read(id));
        await this.#lock.run(() => this.#backend.setAdapter(slot, adapter));
        this.slots.endLoad(slot, true);
        return slot;
      } catch (error) {
        this.slots.endLoad(slot, false);
        throw error;
      } finally {
        this.#loads.delete(id);
      }
    })();
    this.#loads.set(id, load);
    load.then(
      () => this.#closed || this.emit("adapter:loaded", { id, slot, ms: performance.now() - startedAt }),
      (error: unknown) => this.#closed || this.emit("adapter:load-failed", { id, error }),
    );
    return load;
  }

  /** Disk to host, once per adapter however many ask. */
  #read(id: string): Promise<LoraAdapter> {
    const pending = this.#reads.get(id);
    if (pending) return pending;
    const read = this.disk
      .read(id)
      .then(({ adapter, bytes }) => {
        this.host.put(id, adapter, bytes);
        return adapter;
      })
      .finally(() => this.#reads.delete(id));
    this.#reads.set(id, read);
    return read;
  }
}
