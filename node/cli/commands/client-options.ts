// What the payer's commands (infer, gateway, status) share: how the client finds nodes, its spending limits and
// where its state lives, and how a command opens a started PayingClient from its flags.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { getAddress, isAddress, parseUnits, type Address } from "viem";
import { PayingClient, type SpendingLimits } from "../../client/index.ts";
import { stringOption, UsageError, type ParsedCommand } from "../args.ts";
import { connect, parseAmount, type ChainAccess } from "./stake.ts";

export const discoveryOptions = {
  bootstrap: { type: "string", multiple: true },
  "peers-from": { type: "string", multiple: true },
} as const;

export const discoveryHelp: Record<string, string> = {
  bootstrap: "a node's libp2p multiaddr (…/p2p/<peer id>) to join the gossip through (repeatable)",
  "peers-from": "or a node's API URL whose GET /v1/peers lists the network (repeatable)",
};

export const limitOptions = {
  "max-per-request": { type: "string" },
  "max-per-hour": { type: "string" },
  "max-price": { type: "string" },
} as const;

export const limitHelp: Record<string, string> = {
  "max-per-request": "OPEN one request may cost at most (price x (prompt + max_tokens)); default no limit",
  "max-per-hour": "OPEN all requests of any hour may cost together; default no limit",
  "max-price": "wei per token at most: dearer nodes are not used",
};

/** The client's folder: <data-dir>/client (payer state, gateway.json). */
export function clientDir(values: ParsedCommand["values"]): string {
  return join(resolve(stringOption(values, "data-dir") ?? join(homedir(), ".openlora")), "client");
}

/** An address option, checked. */
export function addressOption(values: ParsedCommand["values"], name: string): Address | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  if (!isAddress(text, { strict: false })) {
    throw new UsageError(`--${name} must be an address (0x and 40 hex digits), got "${text}"`);
  }
  return getAddress(text);
}

export function requiredAddress(values: ParsedCommand["values"], name: string): Address {
  const address = addressOption(values, name);
  if (address === undefined) throw new UsageError(`--${name} <address> is required`);
  return address;
}

export function spendingLimits(values: ParsedCommand["values"]): SpendingLimits {
  const limit = (name: string): bigint | undefined => {
    const text = stringOption(values, name);
    return text === undefined ? undefined : parseAmount(text, name, false);
  };
  return { perRequest: limit("max-per-request"), perHour: limit("max-per-hour") };
}

function maxPrice(values: ParsedCommand["values"]): bigint | undefined {
  const text = stringOption(values, "max-price");
  if (text === undefined) return undefined;
  if (!/^\d{1,40}$/.test(text)) throw new UsageError(`--max-price must be a whole number of wei, got "${text}"`);
  return parseUnits(text, 0);
}

function urls(values: ParsedCommand["values"], name: string): string[] {
  const list = (values[name] as string[] | undefined) ?? [];
  for (const url of list) {
    if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
      throw new UsageError(`--${name} must be an http(s) URL, got "${url}"`);
    }
  }
  return list;
}

/** A started client paying from the keystore's key, found nodes as the flags say. Stop it when done. */
export async function openClient(values: ParsedCommand["values"], access: ChainAccess): Promise<PayingClient> {
  const bootstrap = (values.bootstrap as string[] | undefined) ?? [];
  const peersFrom = urls(values, "peers-from");
  if (bootstrap.length === 0 && peersFrom.length === 0) {
    throw new UsageError("say how to find nodes: --bootstrap <multiaddr> or --peers-from <node API URL>");
  }
  if (bootstrap.length > 0 && peersFrom.length > 0) throw new UsageError("give --bootstrap or --peers-from, not both");
  const limits = spendingLimits(values);
  const maxPricePerToken = maxPrice(values);
  const session = await connect(values, access);
  const client = await PayingClient.create({
    publicClient: session.clients.public,
    deployment: session.deployment,
    account: session.wallet.account as Parameters<typeof PayingClient.create>[0]["account"],
    dataDir: clientDir(values),
    discovery: bootstrap.length > 0 ? { bootstrap } : { peersFrom },
    limits,
    maxPricePerToken,
  });
  await client.start();
  return client;
}
