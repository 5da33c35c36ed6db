// Keeps the peer table honest between announcements: expired entries go, and so do peers whose operator's stake
// stopped being active (re-checked through the oracle's cache, so this costs a chain read per operator per TTL).
import { repeatingTask, type RepeatingTask } from "@libp2p/utils";
import type { PeerTable } from "./peer-table.ts";
import type { StakeOracle } from "./stake-oracle.ts";

export interface TableKeeperOptions {
  table: PeerTable;
  oracle: StakeOracle;
  /** Default 1 s. */
  intervalMs?: number;
}

export class TableKeeper {
  #o: TableKeeperOptions;
  #task: RepeatingTask;
  #tick: Promise<void> | null = null;

  constructor(options: TableKeeperOptions) {
    this.#o = options;
    this.#task = repeatingTask(() => (this.#tick = this.tick()), options.intervalMs ?? 1_000);
  }

  start(): void {
    this.#task.start();
  }

  /** Stops the passes; waits for one in flight. */
  async stop(): Promise<void> {
    this.#task.stop();
    await this.#tick;
  }

  /** One pass: sweep expired entries, drop those whose stake is gone. */
  async tick(): Promise<void> {
    const { table, oracle } = this.#o;
    table.sweep();
    await Promise.all(
      table
        .entries()
        .filter((e) => !e.local)
        .map(async (e) => {
          let status;
          try {
            status = await oracle.check(e.announcement.operator, e.peerId);
          } catch {
            return; // the chain is unreachable for a moment: keep what we know rather than empty the table
          }
          // Only the entry checked may go: a fresher announcement may have replaced it meanwhile.
          if (status !== "active" && table.get(e.peerId) === e) table.remove(e.peerId, "unstaked");
        }),
    );
  }
}
