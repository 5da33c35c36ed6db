// Encrypted JSON wallet keystore (Web3 Secret Storage v3, scrypt), through ethers: viem has no keystore.
// The CLI's `openlora wallet new|import` use this; the result is a viem account.
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { decryptKeystoreJson, encryptKeystoreJson, isKeystoreJson, Wallet } from "ethers";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { getAddress, isHex, type Address, type Hex } from "viem";

export interface KeystoreOptions {
  /** scrypt cost N (power of two). Default 131072 (ethers' default, ~1 s); tests may use a small N. */
  scryptN?: number;
}

export interface Keystore {
  address: Address;
  json: string;
}

export interface UnlockedWallet {
  address: Address;
  privateKey: Hex;
  account: PrivateKeyAccount;
}

export class KeystoreError extends Error {
  override name = "KeystoreError";
}

async function encrypt(privateKey: Hex, password: string, opts: KeystoreOptions): Promise<Keystore> {
  const account = privateKeyToAccount(privateKey);
  const json = await encryptKeystoreJson(
    { address: account.address, privateKey },
    password,
    opts.scryptN === undefined ? {} : { scrypt: { N: opts.scryptN } },
  );
  return { address: account.address, json };
}

/** A fresh random key, encrypted with `password`. */
export async function createKeystore(password: string, opts: KeystoreOptions = {}): Promise<Keystore> {
  const wallet = Wallet.createRandom();
  return encrypt(wallet.privateKey as Hex, password, opts);
}

/** An existing private key (0x + 64 hex), encrypted with `password`. */
export async function importKeystore(privateKey: Hex, password: string, opts: KeystoreOptions = {}): Promise<Keystore> {
  if (!isHex(privateKey) || privateKey.length !== 66)
    throw new KeystoreError("private key must be 0x followed by 64 hex digits");
  return encrypt(privateKey.toLowerCase() as Hex, password, opts);
}

/** Decrypt a keystore JSON; throws KeystoreError on a wrong password or a malformed file. */
export async function loadKeystore(json: string, password: string): Promise<UnlockedWallet> {
  if (!isKeystoreJson(json)) throw new KeystoreError("not a keystore JSON");
  let privateKey: Hex;
  try {
    privateKey = (await decryptKeystoreJson(json, password)).privateKey as Hex;
  } catch (err) {
    throw new KeystoreError(`cannot decrypt keystore: ${(err as Error).message}`);
  }
  const account = privateKeyToAccount(privateKey);
  return { address: getAddress(account.address), privateKey, account };
}

/** Write a keystore JSON readable by its owner only (mode 0600); creates the folder. */
export async function writeKeystoreFile(path: string, keystore: Keystore): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, keystore.json, { mode: 0o600, flag: "wx" });
}

/** Read and decrypt a keystore file. */
export async function readKeystoreFile(path: string, password: string): Promise<UnlockedWallet> {
  return loadKeystore(await readFile(path, "utf8"), password);
}
