// `openlora gateway --listen 127.0.0.1:PORT`: a local OpenAI-compatible endpoint for any app (LangChain, an IDE
// plugin, curl): each request is routed to the best node for its adapter, paid with the keystore's key within
// the spending limits, its receipt verified, failed over before the first token. Runs until SIGINT/SIGTERM; while
// it runs, <data-dir>/client/gateway.json tells `openlora status` where it listens and its limits.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Gateway } from "../../client/index.ts";
import { parseCommand, stringOption, UsageError, type CommandSpec, type ParsedCommand } from "../args.ts";
import {
  clientDir,
  discoveryHelp,
  discoveryOptions,
  limitHelp,
  limitOptions,
  openClient,
  spendingLimits,
} from "./client-options.ts";
import { chainHelp, chainOptions, tokens, type ChainAccess } from "./stake.ts";

export const GATEWAY_FILE = "gateway.json";

const spec: CommandSpec = {
  summary: "Serve a local OpenAI-compatible endpoint: each request routed to the best node, paid, its receipt checked.",
  usage: "openlora gateway --listen 127.0.0.1:PORT (--bootstrap <multiaddr> | --peers-from <url>) [limits] [options]",
  options: { listen: { type: "string" }, ...discoveryOptions, ...limitOptions, ...chainOptions },
  help: {
    listen: "host:port to listen on (default 127.0.0.1:8090; port 0 picks a free one)",
    ...discoveryHelp,
    ...limitHelp,
    ...chainHelp,
    "data-dir": "your data folder (default ~/.openlora): keystore.json, and client/ with your channels' state",
    json: "log one JSON line per request on stderr (default: a short text line)",
  },
};

/** What gateway.json holds while a gateway runs. */
export interface GatewayFile {
  url: string;
  pid: number;
  payer: string;
  limits: { perRequest: string | null; perHour: string | null };
  startedAt: string;
}

export async function gatewayCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { host, port } = listenAddress(args.values);
  const limits = spendingLimits(args.values);
  const client = await openClient(args.values, access);
  const json = args.values.json === true;
  let gateway: Gateway;
  try {
    gateway = await Gateway.start({
      client,
      host,
      port,
      log: (line) =>
        process.stderr.write(
          json ? `${JSON.stringify(line)}\n` : `[gateway] ${line.method} ${line.path} ${line.status} ${line.ms} ms\n`,
        ),
    });
  } catch (error) {
    await client.stop();
    throw new Error(`cannot listen on ${host}:${port}: ${(error as Error).message}`);
  }
  const file = join(clientDir(args.values), GATEWAY_FILE);
  const info: GatewayFile = {
    url: gateway.url,
    pid: process.pid,
    payer: client.payer,
    limits: { perRequest: limits.perRequest?.toString() ?? null, perHour: limits.perHour?.toString() ?? null },
    startedAt: new Date().toISOString(),
  };
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(info, null, 2)}\n`);
  const shown = (wei: bigint | undefined): string => (wei === undefined ? "none" : tokens(wei));
  process.stderr.write(
    `[openlora] gateway for payer ${client.payer} listening on ${gateway.url}/v1 ` +
      `(limits: ${shown(limits.perRequest)} per request, ${shown(limits.perHour)} per hour)\n`,
  );
  console.log(gateway.url);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await gateway.stop();
  await client.stop();
  await rm(file, { force: true });
}

function listenAddress(values: ParsedCommand["values"]): { host: string; port: number } {
  const text = stringOption(values, "listen") ?? "127.0.0.1:8090";
  const match = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new UsageError(`--listen must be host:port, e.g. 127.0.0.1:8090, got "${text}"`);
  return { host: match[1].replace(/^\[|\]$/g, ""), port };
}
