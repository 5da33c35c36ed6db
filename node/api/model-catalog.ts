// What a request's `model` may name: the base model, an adapter by its id (content hash), or an adapter by an
// alias (its folder name at import, or a name given with POST /v1/adapters). Aliases persist in the data folder
// as JSON, written whole to a temporary file and renamed, so a crash leaves the old file or the new one.
import { readFile, rename, writeFile } from "node:fs/promises";
import { isAdapterId, type AdapterId, type AdapterTier, type Engine } from "../engine/index.ts";
import { ApiError, badParam } from "./errors.ts";

/** An alias: a short name, not shaped like an adapter id. */
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A model as GET /v1/models lists it (OpenAI's Model object, plus what the node knows of it). */
export interface ModelEntry {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
  /** "base" or "adapter". */
  kind: "base" | "adapter";
  /** The adapter's content hash (adapters only). */
  adapter?: AdapterId;
  aliases?: string[];
  tier?: AdapterTier;
  bytes?: number;
}

/** What `model` named: the base model (adapterId null) or an adapter, registered here or not (yet). */
export type Resolved = { adapterId: null } | { adapterId: AdapterId; registered: boolean };

export class ModelCatalog {
  readonly #file: string;
  readonly #engine: Engine;
  readonly #created: number;
  #aliases: Map<string, AdapterId>;
  #writes: Promise<void> = Promise.resolve();

  private constructor(file: string, engine: Engine, aliases: Map<string, AdapterId>) {
    this.#file = file;
    this.#engine = engine;
    this.#aliases = aliases;
    this.#created = Math.floor(Date.now() / 1000);
    // An adapter deleted from the node takes its aliases with it.
    engine.on("adapter:removed", ({ id }) => {
      const names = this.aliasesOf(id);
      if (names.length === 0) return;
      for (const name of names) this.#aliases.delete(name);
      this.#save().catch((error: unknown) => console.error(`cannot save ${this.#file}:`, error));
    });
  }

  /** Reads the alias file (absent: no aliases yet); aliases of adapters no longer registered are dropped. */
  static async open(file: string, engine: Engine): Promise<ModelCatalog> {
    let stored: Record<string, unknown> = {};
    try {
      stored = (JSON.parse(await readFile(file, "utf8")) as { aliases?: Record<string, unknown> }).aliases ?? {};
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new ApiError(500, "aliases_unreadable", `${file}: ${(error as Error).message}`, { blame: "node" });
      }
    }
    const aliases = new Map<string, AdapterId>();
    for (const [name, id] of Object.entries(stored)) {
      if (ALIAS.test(name) && isAdapterId(id) && engine.adapters.has(id)) aliases.set(name, id);
    }
    return new ModelCatalog(file, engine, aliases);
  }

  get baseName(): string {
    return this.#engine.model.name;
  }

  /** What `model` names, or null when nothing: not the base, not an id, not an alias. */
  resolve(model: string): Resolved | null {
    if (model === this.baseName) return { adapterId: null };
    const id = model.toLowerCase();
    if (isAdapterId(id)) return { adapterId: id, registered: this.#engine.adapters.has(id) };
    const aliased = this.#aliases.get(model);
    return aliased === undefined ? null : { adapterId: aliased, registered: this.#engine.adapters.has(aliased) };
  }

  /** Like resolve(), for a model that must exist here: unknown names are 404. */
  require(model: string, param = "model"): Resolved {
    const resolved = this.resolve(model);
    if (resolved === null) {
      throw new ApiError(404, "model_not_found", `The model '${model}' does not exist on this node`, { param });
    }
    return resolved;
  }

  aliasesOf(id: string): string[] {
    return [...this.#aliases].filter(([, target]) => target === id).map(([name]) => name);
  }

  /**
   * Names an adapter. An alias already naming another adapter is refused (409) unless `replace`; the base model's
   * name and id-shaped names are refused (400).
   */
  async setAlias(name: string, id: AdapterId, options: { replace?: boolean } = {}): Promise<void> {
    if (!ALIAS.test(name) || isAdapterId(name.toLowerCase())) {
      throw badParam(
        "alias",
        `must be 1-128 letters, digits, '.', '_', ':' or '-' and not an adapter id, got ${JSON.stringify(name)}`,
      );
    }
    if (name === this.baseName) throw badParam("alias", `${JSON.stringify(name)} is the base model's name`);
    const current = this.#aliases.get(name);
    if (current === id) return;
    if (current !== undefined && !options.replace) {
      throw new ApiError(409, "alias_taken", `alias ${JSON.stringify(name)} already names adapter ${current}`, {
        param: "alias",
      });
    }
    this.#aliases.set(name, id);
    await this.#save();
  }

  /** The base model, then every registered adapter by name, with its tier, aliases and size. */
  list(): ModelEntry[] {
    const base: ModelEntry = {
      id: this.baseName,
      object: "model",
      created: this.#created,
      owned_by: "openlora",
      kind: "base",
    };
    const adapters = this.#engine.adapters.list().map((a): ModelEntry => {
      const aliases = this.aliasesOf(a.id);
      return {
        id: aliases[0] ?? a.id,
        object: "model",
        created: this.#created,
        owned_by: "openlora",
        kind: "adapter",
        adapter: a.id as AdapterId,
        aliases,
        tier: a.tier,
        bytes: a.bytes,
      };
    });
    return [base, ...adapters.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))];
  }

  /** One model by any name it answers to, or null. */
  entry(model: string): ModelEntry | null {
    const resolved = this.resolve(model);
    if (resolved === null) return null;
    const list = this.list();
    if (resolved.adapterId === null) return list[0];
    return list.find((m) => m.adapter === resolved.adapterId) ?? null;
  }

  /** Writes the file whole, one write at a time (the last one carries every change). */
  #save(): Promise<void> {
    const write = async (): Promise<void> => {
      const tmp = `${this.#file}.tmp`;
      await writeFile(tmp, `${JSON.stringify({ aliases: Object.fromEntries(this.#aliases) }, null, 2)}\n`);
      await rename(tmp, this.#file);
    };
    this.#writes = this.#writes.then(write, write);
    return this.#writes;
  }
}
