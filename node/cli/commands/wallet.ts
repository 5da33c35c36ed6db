// `openlora wallet new|import|address`: the operator's key as an encrypted JSON keystore (node/chain/keystore.ts).
// Secrets never come from a plain flag (they would show in `ps` and shell history): a password comes from
// --password-file, $OPENLORA_PASSWORD or a prompt without echo; a private key from --private-key-file,
// $OPENLORA_PRIVATE_KEY or a prompt. The stake commands unlock the keystore through unlockKeystore() below.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { getAddress, isAddress, type Address, type Hex } from "viem";
import {
  createKeystore,
  importKeystore,
  readKeystoreFile,
  writeKeystoreFile,
  type Keystore,
  type UnlockedWallet,
} from "../../chain/keystore.ts";
import { parseCommand, stringOption, UsageError, type CommandSpec, type ParsedCommand } from "../args.ts";

export const PASSWORD_ENV = "OPENLORA_PASSWORD";
export const PRIVATE_KEY_ENV = "OPENLORA_PRIVATE_KEY";
const KEYSTORE_FILE = "keystore.json";

/** Options every command that touches the keystore takes. */
export const keystoreOptions = {
  "data-dir": { type: "string" },
  keystore: { type: "string" },
  "password-file": { type: "string" },
} as const;

export const keystoreHelp: Record<string, string> = {
  "data-dir": "the node's data folder (default ~/.openlora); the keystore is <data-dir>/keystore.json",
  keystore: "the keystore file (default <data-dir>/keystore.json)",
  "password-file": `file holding the keystore password (else $${PASSWORD_ENV}, else a prompt on a terminal)`,
};

const newSpec: CommandSpec = {
  summary: "Create a new operator key, encrypted into a keystore file (scrypt, Web3 Secret Storage v3).",
  usage: "openlora wallet new [--data-dir <dir> | --keystore <file>] [--password-file <file>] [--json]",
  options: { ...keystoreOptions, json: { type: "boolean" } },
  help: { ...keystoreHelp, json: "print one JSON object: address, keystore" },
};

const importSpec: CommandSpec = {
  summary: "Encrypt an existing private key into a keystore file.",
  usage: "openlora wallet import [--private-key-file <file>] [--data-dir <dir> | --keystore <file>] [options]",
  options: { ...keystoreOptions, "private-key-file": { type: "string" }, json: { type: "boolean" } },
  help: {
    "private-key-file": `file holding the private key, 0x and 64 hex digits (else $${PRIVATE_KEY_ENV}, else a prompt)`,
    ...keystoreHelp,
    json: "print one JSON object: address, keystore",
  },
};

const addressSpec: CommandSpec = {
  summary: "Print the address of the keystore's key (no password needed).",
  usage: "openlora wallet address [--data-dir <dir> | --keystore <file>] [--json]",
  options: { "data-dir": keystoreOptions["data-dir"], keystore: keystoreOptions.keystore, json: { type: "boolean" } },
  help: {
    "data-dir": keystoreHelp["data-dir"],
    keystore: keystoreHelp.keystore,
    json: "print one JSON object: address, keystore",
  },
};

const WALLET_HELP = `Keep the node operator's key in an encrypted keystore.

Usage: openlora wallet <command>

  new       create a new key
  import    encrypt an existing private key
  address   print the keystore's address

Run openlora wallet <command> --help for its options.`;

export async function walletCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === "new") return create(rest);
  if (sub === "import") return importKey(rest);
  if (sub === "address") return address(rest);
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(WALLET_HELP);
    return;
  }
  throw new UsageError(`unknown wallet command "${sub}" (new, import, address)`);
}

async function create(argv: string[]): Promise<void> {
  const args = parseCommand(newSpec, argv);
  if (!args) return;
  const path = keystorePath(args.values);
  refuseExisting(path);
  const password = await newPassword(args.values);
  await save(path, await createKeystore(password), args.values.json === true);
}

async function importKey(argv: string[]): Promise<void> {
  const args = parseCommand(importSpec, argv);
  if (!args) return;
  const path = keystorePath(args.values);
  refuseExisting(path);
  const privateKey = await readPrivateKey(args.values);
  const password = await newPassword(args.values);
  await save(path, await importKeystore(privateKey, password), args.values.json === true);
}

async function address(argv: string[]): Promise<void> {
  const args = parseCommand(addressSpec, argv);
  if (!args) return;
  const path = keystorePath(args.values);
  printWallet({ address: await keystoreAddress(path), keystore: path }, args.values.json === true);
}

async function save(path: string, keystore: Keystore, json: boolean): Promise<void> {
  await writeKeystoreFile(path, keystore);
  printWallet({ address: keystore.address, keystore: path }, json);
}

function printWallet(result: { address: Address; keystore: string }, json: boolean): void {
  console.log(json ? JSON.stringify(result) : `address   ${result.address}\nkeystore  ${result.keystore}`);
}

/** The keystore file named by --keystore, else <--data-dir or ~/.openlora>/keystore.json, as an absolute path. */
export function keystorePath(values: ParsedCommand["values"]): string {
  const file = stringOption(values, "keystore");
  if (file !== undefined) return resolve(file);
  return resolve(stringOption(values, "data-dir") ?? join(homedir(), ".openlora"), KEYSTORE_FILE);
}

function refuseExisting(path: string): void {
  if (existsSync(path)) throw new UsageError(`${path} exists: remove it or choose another --keystore`);
}

/** Decrypt the keystore the options name, with the password from wherever they say. */
export async function unlockKeystore(values: ParsedCommand["values"]): Promise<UnlockedWallet> {
  const path = keystorePath(values);
  if (!existsSync(path)) throw new UsageError(`no keystore at ${path}: create one with openlora wallet new`);
  return readKeystoreFile(path, await readPassword(values, "Keystore password: "));
}

/** The address a keystore file holds, read from its plain "address" field. */
export async function keystoreAddress(path: string): Promise<Address> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read keystore ${path}: ${(error as Error).message}`);
  }
  let field: unknown;
  try {
    field = (JSON.parse(text) as { address?: unknown }).address;
  } catch {
    throw new Error(`${path} is not a keystore (not JSON)`);
  }
  const hex = typeof field === "string" && !field.startsWith("0x") ? `0x${field}` : field;
  if (typeof hex !== "string" || !isAddress(hex, { strict: false })) throw new Error(`${path} holds no address`);
  return getAddress(hex);
}

/** The password for an existing keystore: --password-file, else $OPENLORA_PASSWORD, else a prompt on a terminal. */
export async function readPassword(values: ParsedCommand["values"], prompt: string): Promise<string> {
  const file = stringOption(values, "password-file");
  if (file !== undefined) return secretFromFile(file, "--password-file");
  const env = process.env[PASSWORD_ENV];
  if (!promptsForPassword(values) && env !== undefined) return env;
  if (!process.stdin.isTTY) {
    throw new UsageError(`no password: give --password-file, set ${PASSWORD_ENV}, or run on a terminal to be asked`);
  }
  const password = await promptHidden(prompt);
  if (password === "") throw new UsageError("empty password");
  return password;
}

/** A password for a new keystore; typed twice when it comes from the prompt. */
async function newPassword(values: ParsedCommand["values"]): Promise<string> {
  const password = await readPassword(values, "New keystore password: ");
  if (promptsForPassword(values) && (await promptHidden("Repeat the password: ")) !== password) {
    throw new UsageError("the passwords differ");
  }
  return password;
}

function promptsForPassword(values: ParsedCommand["values"]): boolean {
  return stringOption(values, "password-file") === undefined && !process.env[PASSWORD_ENV];
}

async function readPrivateKey(values: ParsedCommand["values"]): Promise<Hex> {
  const file = stringOption(values, "private-key-file");
  let key: string;
  if (file !== undefined) key = await secretFromFile(file, "--private-key-file");
  else if (process.env[PRIVATE_KEY_ENV]) key = process.env[PRIVATE_KEY_ENV];
  else if (process.stdin.isTTY) key = await promptHidden("Private key (0x + 64 hex digits): ");
  else throw new UsageError(`no private key: give --private-key-file, set ${PRIVATE_KEY_ENV}, or run on a terminal`);
  key = key.trim();
  if (/^[0-9a-fA-F]{64}$/.test(key)) key = `0x${key}`;
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw new UsageError("the private key must be 0x followed by 64 hex digits");
  return key as Hex;
}

/** A secret kept in a file: its content without the final line break. */
async function secretFromFile(path: string, option: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UsageError(`${option} ${path}: ${(error as Error).message}`);
  }
  const secret = text.replace(/\r?\n$/, "");
  if (secret === "") throw new UsageError(`${option} ${path} is empty`);
  return secret;
}

/** Reads a line from the terminal without echoing it (raw mode); Ctrl-C or Ctrl-D cancels. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  return new Promise((resolvePrompt, reject) => {
    let value = "";
    const finish = (): void => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") {
          finish();
          resolvePrompt(value);
          return;
        }
        if (ch === "\u0003" || ch === "\u0004") {
          finish();
          reject(new UsageError("cancelled"));
          return;
        }
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on("data", onData);
  });
}
