// openlora wallet new|import|address in-process (real keystore files, ethers' default scrypt cost), and the
// wallet and stake commands' --help and bad input, in-process and (exit codes) through the executable.
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { readKeystoreFile } from "../../node/chain/keystore.ts";
import { UsageError } from "../../node/cli/args.ts";
import { stakeCommand, unstakeCommand, withdrawStakeCommand } from "../../node/cli/commands/stake.ts";
import { PASSWORD_ENV, PRIVATE_KEY_ENV, walletCommand } from "../../node/cli/commands/wallet.ts";

type Command = (argv: string[]) => Promise<void>;

const CLI = join(import.meta.dirname, "../../node/cli/openlora.ts");
// Hardhat's first default account: a well-known test key.
const HARDHAT_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const HARDHAT_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "openlora-wallet-"));
  await writeFile(join(dir, "password"), "s3cret\n");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function walletJson(...argv: string[]): Promise<{ address: string; keystore: string }> {
  const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
  try {
    await walletCommand([...argv, "--json"]);
    return JSON.parse(String(log.mock.calls[0][0]));
  } finally {
    log.mockRestore();
  }
}

/** Runs the CLI in a child process (stdin not a terminal, no password in the environment). */
async function openlora(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_NO_WARNINGS: "1" };
  delete env[PASSWORD_ENV];
  delete env[PRIVATE_KEY_ENV];
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("openlora wallet", () => {
  it("new writes an owner-only keystore in --data-dir that the password opens; address needs none", async () => {
    const data = join(dir, "node-a");
    const created = await walletJson("new", "--data-dir", data, "--password-file", join(dir, "password"));
    expect(created.keystore).toBe(join(data, "keystore.json"));
    expect(created.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect((await stat(created.keystore)).mode & 0o777).toBe(0o600);
    expect((await readKeystoreFile(created.keystore, "s3cret")).address).toBe(created.address);
    expect(await walletJson("address", "--data-dir", data)).toEqual(created);
    await expect(walletCommand(["new", "--data-dir", data, "--password-file", join(dir, "password")])).rejects.toThrow(
      /keystore\.json exists: remove it or choose another --keystore/,
    );
  });

  it("import encrypts a key from the environment with the password from the environment", async () => {
    const file = join(dir, "imported.json");
    vi.stubEnv(PRIVATE_KEY_ENV, HARDHAT_KEY);
    vi.stubEnv(PASSWORD_ENV, "from-env");
    try {
      expect(await walletJson("import", "--keystore", file)).toEqual({ address: HARDHAT_ADDRESS, keystore: file });
    } finally {
      vi.unstubAllEnvs();
    }
    const unlocked = await readKeystoreFile(file, "from-env");
    expect(unlocked.privateKey).toBe(HARDHAT_KEY);
    await writeFile(join(dir, "bad-key"), "0x1234\n");
    const bad = walletCommand([
      "import",
      "--keystore",
      join(dir, "x.json"),
      "--private-key-file",
      join(dir, "bad-key"),
    ]);
    await expect(bad).rejects.toThrow(new UsageError("the private key must be 0x followed by 64 hex digits"));
  });

  it("every wallet and stake command answers --help; bad input is a UsageError naming the problem", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      const helps: [Command, string[]][] = [
        [walletCommand, []],
        [walletCommand, ["new"]],
        [walletCommand, ["import"]],
        [walletCommand, ["address"]],
        [stakeCommand, []],
        [unstakeCommand, []],
        [withdrawStakeCommand, []],
      ];
      for (const [command, argv] of helps) {
        log.mockClear();
        await command([...argv, "--help"]);
        expect(String(log.mock.calls[0][0])).toMatch(/Usage: openlora/);
      }
    } finally {
      log.mockRestore();
    }
    const usage: [Command, string[], RegExp][] = [
      [walletCommand, ["frob"], /unknown wallet command "frob"/],
      [walletCommand, ["new", "--password", "x"], /Unknown option '--password'/],
      [walletCommand, ["address", "--keystore", join(dir, "missing.json")], /cannot read keystore .*missing\.json/],
      [stakeCommand, ["--peer-id", "x"], /--amount is required/],
      [unstakeCommand, ["--amount", "0"], /--amount must be above 0/],
    ];
    for (const [command, argv, message] of usage) {
      const error = await command(argv).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toMatch(message);
    }
  });

  it("through the openlora executable: --help exits 0, usage errors 2, failures 1", async () => {
    // Each start of the CLI costs a second or more on a loaded machine: a few cases, run side by side.
    const [walletHelp, stakeHelp, badAmount, noPassword, offline] = await Promise.all([
      openlora("wallet", "new", "--help"),
      openlora("withdraw-stake", "--help"),
      openlora("stake", "--amount", "abc"),
      openlora("wallet", "new", "--data-dir", join(dir, "node-b")),
      openlora("withdraw-stake", "--rpc", "http://127.0.0.1:9"),
    ]);
    expect(walletHelp).toMatchObject({ code: 0, stdout: expect.stringMatching(/Usage: openlora wallet new/) });
    expect(stakeHelp).toMatchObject({ code: 0, stdout: expect.stringMatching(/Usage: openlora withdraw-stake/) });
    expect(badAmount).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--amount must be a number of OPEN with at most 18 decimals, got "abc"/),
    });
    expect(noPassword).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/no password: give --password-file, set OPENLORA_PASSWORD, or run on a terminal/),
    });
    expect(offline).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/cannot reach the chain at http:\/\/127\.0\.0\.1:9/),
    });
  });
});
