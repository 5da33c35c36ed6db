// A JSON file that several processes of one user may change (the gateway and `openlora infer` share the payer's
// channel state): every change takes a lock file, reads the file fresh, writes the new content to a temporary
// file, fsyncs it and renames it over the old one. A crash leaves the old file or the new one, never half of one;
// a lock left by a dead process is taken over.
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { OpenLoraError } from "../engine/index.ts";

const LOCK_TIMEOUT_MS = 10_000;

export class StateFileError extends OpenLoraError {
  override name = "StateFileError";
  constructor(message: string, cause?: unknown) {
    super("state_file", message, { blame: "node", cause });
  }
}

export class LockedJsonFile<T> {
  readonly path: string;
  readonly #empty: () => T;
  readonly #check: (value: unknown) => T;
  /** Changes of this process, one at a time (the lock file orders them against other processes). */
  #queue: Promise<unknown> = Promise.resolve();

  /** `check` turns parsed JSON into T or throws naming the problem; `empty` is the content of a missing file. */
  constructor(path: string, empty: () => T, check: (value: unknown) => T) {
    this.path = path;
    this.#empty = empty;
    this.#check = check;
  }

  /** The file's content now (a missing file reads as empty). */
  async read(): Promise<T> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return this.#empty();
      throw new StateFileError(`cannot read ${this.path}: ${(error as Error).message}`, error);
    }
    try {
      return this.#check(JSON.parse(text));
    } catch (error) {
      throw new StateFileError(`${this.path} is not a valid state file: ${(error as Error).message}`, error);
    }
  }

  /** Applies `change` to the current content under the lock and writes the result; returns what `change` returned. */
  update<R>(change: (value: T) => R): Promise<R> {
    const run = async (): Promise<R> => {
      await mkdir(dirname(this.path), { recursive: true });
      const release = await this.#lock();
      try {
        const value = await this.read();
        const result = change(value);
        await this.#write(value);
        return result;
      } finally {
        await release();
      }
    };
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #write(value: T): Promise<void> {
    const tmp = `${this.path}.${process.pid}.tmp`;
    const file = await open(tmp, "w", 0o600);
    try {
      await file.writeFile(`${JSON.stringify(value, null, 1)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
  }

  async #lock(): Promise<() => Promise<void>> {
    const lock = `${this.path}.lock`;
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    for (;;) {
      try {
        const file = await open(lock, "wx");
        await file.writeFile(String(process.pid));
        await file.close();
        return () => rm(lock, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      if (await holderIsGone(lock)) {
        await rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new StateFileError(`${lock} is held by another process for over ${LOCK_TIMEOUT_MS / 1000} s`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** The lock names a process that no longer runs (it crashed while holding it). */
async function holderIsGone(lock: string): Promise<boolean> {
  let pid: number;
  try {
    pid = Number(await readFile(lock, "utf8"));
  } catch {
    return false; // being written or just removed: look again
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}
