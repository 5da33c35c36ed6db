// `openlora node start`: runs a node until SIGINT/SIGTERM. Options come from flags and from a JSON config file
// (--config; its keys are the flags' names in camelCase, flags win). Free mode (--free) needs nothing but a model;
// paid mode connects to the chain, unlocks the operator's keystore and checks the stake before serving.
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { BACKEND_CHOICES, type BackendChoice } from "../../engine/index.ts";
import { jsonLogger, NodeService, type NodeServiceOptions } from "../../api/index.ts";
import { numberOption, parseCommand, stringOption, UsageError, type CommandSpec, type ParsedCommand } from "../args.ts";
import { progressDisplay } from "../progress.ts";
import { untilSignal } from "../signals.ts";
import { connect } from "./stake.ts";
import { keystoreHelp, keystoreOptions } from "./wallet.ts";

export const ADMIN_TOKEN_ENV = "OPENLORA_ADMIN_TOKEN";
const DEFAULT_API = "127.0.0.1:8080";

const spec: CommandSpec = {
  summary: "Run a node: the model and its adapters behind an OpenAI-compatible API, paid or free.",
  usage: "openlora node start [--config node.json] [--free] --model <path> [options]",
  options: {
    config: { type: "string" },
    model: { type: "string" },
    backend: { type: "string" },
    threads: { type: "string" },
    "adapter-slots": { type: "string" },
    "max-rank": { type: "string" },
    "host-cache": { type: "string" },
    "step-slowdown": { type: "string" },
    adapters: { type: "string" },
    api: { type: "string" },
    "public-api": { type: "string" },
    free: { type: "boolean" },
    price: { type: "string" },
    rpc: { type: "string" },
    deployment: { type: "string" },
    ...keystoreOptions,
    bootstrap: { type: "string", multiple: true },
    "p2p-listen": { type: "string", multiple: true },
    "settle-interval": { type: "string" },
    "settle-threshold": { type: "string" },
    "settle-batch": { type: "string" },
    drain: { type: "string" },
  },
  help: {
    config: "JSON file with any of these options, keys in camelCase (dataDir, adapterSlots, ...); flags win",
    "data-dir": "the node's data folder: ledger, adapters, aliases, admin token, peer key (default ~/.openlora)",
    model: "model folder or file: llama2.c .bin, .gguf, or a Hugging Face folder",
    backend: `${BACKEND_CHOICES.join(" | ")} (default auto: webgpu on a GPU, simd on a software adapter or none)`,
    threads: "simd backend: worker threads (default: the machine's cores)",
    "adapter-slots": "adapters resident on the device at once (default 4; on a GPU, what its memory holds)",
    "max-rank": "largest adapter rank accepted (default 64)",
    "host-cache": "host memory for adapters, MiB (default 256)",
    "step-slowdown":
      "while several peers/payers compete, a batch step costs at most this many times a lone request's step " +
      "(>= 1; lower: latency nearer idle, less throughput; default 2)",
    adapters: "a folder of PEFT adapter folders imported at start, each named by its folder name",
    api: `host:port the HTTP API listens on (default ${DEFAULT_API})`,
    "public-api": "the API URL announced to peers (default: the URL the API listens on)",
    free: "serve without payment: no chain, no keystore",
    price: "wei of OPEN per token, prompt and completion (paid mode)",
    rpc: "JSON-RPC URL of the chain (paid mode; default http://127.0.0.1:8545)",
    deployment: "deployments folder holding <chainId>.json, or that file (default ./deployments)",
    keystore: keystoreHelp.keystore,
    "password-file": keystoreHelp["password-file"],
    bootstrap: "a peer's multiaddr to join the network through (repeatable)",
    "p2p-listen": "libp2p listen multiaddr (repeatable; default /ip4/0.0.0.0/tcp/0)",
    "settle-interval": "seconds between settlements of unsettled vouchers (default 300)",
    "settle-threshold": "wei of unsettled vouchers that triggers a settlement at once (default: interval only)",
    "settle-batch": "vouchers per settlement transaction at most (default 100)",
    drain: "seconds requests in flight get to finish at shutdown (default 10)",
  },
};

const NODE_HELP = `Run an OpenLoRA node.

Usage: openlora node <command>

  start   serve a model and its adapters (OpenAI-compatible API, usage ledger, settlement)

Run openlora node start --help for its options.`;

export async function nodeCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === "start") return start(rest);
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(NODE_HELP);
    return;
  }
  throw new UsageError(`unknown node command "${sub}" (start)`);
}

async function start(argv: string[]): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const values = await withConfigFile(args.values);
  const options = await serviceOptions(values);
  const log = jsonLogger();
  const node = await NodeService.start({ ...options, log, onProgress: progressDisplay() });
  const mode = node.paid ? `paid, operator ${node.paid.operator}` : "free mode";
  const adapters = node.imported.map((a) => (a.aliased ? a.name : `${a.name} (as ${a.id})`)).join(", ");
  process.stderr.write(
    `[openlora] serving ${node.engine.model.name} on ${node.engine.device.kind} at ${node.url} (${mode})\n` +
      (adapters ? `[openlora] adapters: ${adapters}\n` : "") +
      `[openlora] admin token: ${node.adminToken.source === "given" ? "as configured" : node.adminToken.source}\n`,
  );
  log.log("info", "node_started", {
    url: node.url,
    mode: node.paid ? "paid" : "free",
    ...(node.paid && { operator: node.paid.operator, peer_id: node.paid.peers?.peerId }),
    model: node.engine.model.name,
    device: node.engine.device.kind,
    adapters: node.imported,
  });
  await untilSignal();
  log.log("info", "node_stopping", {});
  // A second signal, or a stop that overruns its bound, ends the process at once.
  const hardStop = setTimeout(() => process.exit(1), node.stopBoundMs).unref();
  process.once("SIGINT", () => process.exit(130));
  process.once("SIGTERM", () => process.exit(143));
  await node.stop();
  clearTimeout(hardStop);
  log.log("info", "node_stopped", {});
  // Every part is stopped or was given up on (each step is bounded): a request to the chain or a socket that a
  // given-up part left open must not keep the process from ending.
  setTimeout(() => process.exit(), 2_000).unref();
}

/** Flags over the config file's values. */
async function withConfigFile(values: ParsedCommand["values"]): Promise<ParsedCommand["values"]> {
  const file = stringOption(values, "config");
  if (file === undefined) return values;
  let config: unknown;
  try {
    config = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new UsageError(`--config ${file}: ${(error as Error).message}`);
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new UsageError(`--config ${file}: must hold a JSON object`);
  }
  const fromFile: ParsedCommand["values"] = {};
  const flags = new Map(Object.keys(spec.options).map((flag) => [camel(flag), flag]));
  for (const [key, value] of Object.entries(config)) {
    if (key === "adminToken") continue; // read by adminToken() below
    const flag = flags.get(key);
    if (flag === undefined || flag === "config") {
      throw new UsageError(`--config ${file}: unknown key "${key}" (keys are the flags' names in camelCase)`);
    }
    const multiple = (spec.options[flag] as { multiple?: boolean }).multiple === true;
    const boolean = spec.options[flag].type === "boolean";
    if (boolean && typeof value !== "boolean") throw new UsageError(`--config ${file}: "${key}" must be true or false`);
    if (multiple && !(Array.isArray(value) && value.every((v) => typeof v === "string"))) {
      throw new UsageError(`--config ${file}: "${key}" must be a list of strings`);
    }
    if (!boolean && !multiple && typeof value !== "string" && typeof value !== "number") {
      throw new UsageError(`--config ${file}: "${key}" must be a string or a number`);
    }
    fromFile[flag] = boolean || multiple ? (value as boolean | string[]) : String(value);
  }
  const adminTokenValue = (config as { adminToken?: unknown }).adminToken;
  if (adminTokenValue !== undefined && typeof adminTokenValue !== "string") {
    throw new UsageError(`--config ${file}: "adminToken" must be a string`);
  }
  const merged: ParsedCommand["values"] = { ...fromFile };
  for (const [k, v] of Object.entries(values)) if (v !== undefined) merged[k] = v;
  if (typeof adminTokenValue === "string") merged["admin-token"] = adminTokenValue;
  return merged;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

type ServiceOptions = Omit<NodeServiceOptions, "log" | "onProgress">;

async function serviceOptions(values: ParsedCommand["values"]): Promise<ServiceOptions> {
  const model = stringOption(values, "model");
  if (model === undefined || model === "") throw new UsageError("--model is required");
  const backend = (stringOption(values, "backend") ?? "auto") as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) {
    throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(", ")}, got "${backend}"`);
  }
  const api = hostPort(stringOption(values, "api") ?? DEFAULT_API);
  const dataDir = stringOption(values, "data-dir") ?? join(homedir(), ".openlora");
  const options: ServiceOptions = {
    dataDir,
    model,
    backend,
    threads:
      stringOption(values, "threads") === undefined
        ? undefined
        : numberOption(values, "threads", 1, { integer: true, min: 1 }),
    adapterSlots:
      stringOption(values, "adapter-slots") === undefined
        ? undefined
        : numberOption(values, "adapter-slots", 4, { integer: true, min: 1 }),
    maxRank: numberOption(values, "max-rank", 64, { integer: true, min: 1 }),
    hostCacheBytes: numberOption(values, "host-cache", 256, { min: 1 }) * 2 ** 20,
    scheduler: { slowdown: numberOption(values, "step-slowdown", 2, { min: 1 }) },
    adapters: stringOption(values, "adapters"),
    api,
    adminToken: adminToken(values),
    drainMs: numberOption(values, "drain", 10, { min: 0 }) * 1000,
  };
  if (values.free === true) {
    const paidOnly = [
      "price",
      "rpc",
      "keystore",
      "password-file",
      "settle-interval",
      "settle-threshold",
      "settle-batch",
    ];
    const given = paidOnly.filter((name) => values[name] !== undefined);
    if (given.length > 0) throw new UsageError(`--free serves without payment: drop --${given.join(", --")}`);
    return options;
  }
  options.paid = await paidOptions(values, stringOption(values, "public-api"));
  return options;
}

/** Paid mode: the chain and the operator's keystore (unlocked now), the price, settlement and the peer network. */
async function paidOptions(
  values: ParsedCommand["values"],
  publicApi: string | undefined,
): Promise<NodeServiceOptions["paid"]> {
  const price = stringOption(values, "price");
  if (price === undefined) throw new UsageError("--price (wei per token) is required in paid mode (or pass --free)");
  if (!/^\d{1,30}$/.test(price)) throw new UsageError(`--price must be a whole number of wei, got "${price}"`);
  const threshold = stringOption(values, "settle-threshold");
  if (threshold !== undefined && !/^\d{1,40}$/.test(threshold)) {
    throw new UsageError(`--settle-threshold must be a whole number of wei, got "${threshold}"`);
  }
  const session = await connect(values, {});
  const list = (name: string): string[] | undefined => values[name] as string[] | undefined;
  return {
    clients: { public: session.clients.public, wallet: session.clients.wallet },
    deployment: session.deployment,
    pricePerToken: BigInt(price),
    settlement: {
      intervalMs: numberOption(values, "settle-interval", 300, { min: 1 }) * 1000,
      // Without a threshold only the interval starts a settlement.
      thresholdWei: threshold === undefined ? 2n ** 256n : BigInt(threshold),
      maxBatch: numberOption(values, "settle-batch", 100, { integer: true, min: 1 }),
    },
    p2p: { publicApi, listen: list("p2p-listen") ?? ["/ip4/0.0.0.0/tcp/0"], bootstrap: list("bootstrap") ?? [] },
  };
}

/** "host:port" (IPv6 in brackets). */
function hostPort(text: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new UsageError(`--api must be host:port, such as 127.0.0.1:8080, got "${text}"`);
  return { host: match[1].replace(/^\[|\]$/g, ""), port };
}

/** From the config file or $OPENLORA_ADMIN_TOKEN, never a flag (it would show in `ps`). */
function adminToken(values: ParsedCommand["values"]): string | undefined {
  const token = stringOption(values, "admin-token") ?? process.env[ADMIN_TOKEN_ENV];
  if (token !== undefined && token.length < 16) {
    throw new UsageError(`the admin token (config adminToken or $${ADMIN_TOKEN_ENV}) must be at least 16 characters`);
  }
  return token;
}
