// openlora stake / unstake / withdraw-stake, called in-process against Hardhat's in-process chain (the commands
// take its EIP-1193 provider as their transport instead of --rpc), with a real keystore file and deployment file.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { custom, parseEther, type Address } from "viem";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { saveDeployment } from "../../node/chain/contracts.ts";
import { createKeystore, writeKeystoreFile } from "../../node/chain/keystore.ts";
import { stakeCommand, unstakeCommand, withdrawStakeCommand, type ChainAccess } from "../../node/cli/commands/stake.ts";
import { peerIdBytesHex } from "../../node/p2p/stake-oracle.ts";
import { createChain, E, type Chain } from "../contracts/fixture.ts";

const PASSWORD = "correct horse battery staple";
let ch: Chain;
let dir: string;
let access: ChainAccess;
let operator: Address;
let peerId: string;
let common: string[];

beforeAll(async () => {
  ch = await createChain(); // minStake 100 OPEN, unbonding 7 days
  dir = await mkdtemp(join(tmpdir(), "openlora-stake-"));
  await saveDeployment(join(dir, "deployments"), ch.deployment);
  // A small scrypt cost keeps the test fast; the commands read whatever cost the file says.
  const keystore = await createKeystore(PASSWORD, { scryptN: 1024 });
  await writeKeystoreFile(join(dir, "data", "keystore.json"), keystore);
  await writeFile(join(dir, "password"), `${PASSWORD}\n`);
  operator = keystore.address;
  await ch.testClient.setBalance({ address: operator, value: parseEther("10") });
  await ch.fund(operator, E(1000));
  peerId = peerIdFromPrivateKey(await generateKeyPair("Ed25519")).toString();
  access = { transport: custom(ch.conn.provider) };
  common = [
    "--deployment",
    join(dir, "deployments"),
    "--data-dir",
    join(dir, "data"),
    "--password-file",
    join(dir, "password"),
  ];
});
afterAll(async () => {
  await ch.conn.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs a command and returns what it printed with console.log. */
async function run(command: (argv: string[], a: ChainAccess) => Promise<void>, ...argv: string[]): Promise<string> {
  const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
  try {
    await command([...common, ...argv], access);
    return log.mock.calls.map((c) => c.join(" ")).join("\n");
  } finally {
    log.mockRestore();
  }
}
const runJson = async (command: (argv: string[], a: ChainAccess) => Promise<void>, ...argv: string[]) =>
  JSON.parse(await run(command, ...argv, "--json"));

describe("openlora stake, unstake, withdraw-stake", () => {
  it("stakes an exact amount, approving first, and binds the peer id and endpoint", async () => {
    const out = await runJson(
      stakeCommand,
      "--amount",
      "150.000000000000000001",
      "--peer-id",
      peerId,
      "--api",
      "http://127.0.0.1:8080",
    );
    expect(out.transactions.map((t: { step: string; status: string }) => [t.step, t.status])).toEqual([
      ["approve", "success"],
      ["stake", "success"],
    ]);
    expect(out.transactions[1].hash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(Number(out.transactions[1].gasUsed)).toBeGreaterThan(21_000);
    expect(out.node).toEqual({
      operator,
      stake: "150.000000000000000001",
      unbonding: "0",
      unbondingEnd: null,
      active: true,
      minStake: "100",
      peerId: peerIdBytesHex(peerId),
      endpoint: "http://127.0.0.1:8080",
      balance: "849.999999999999999999",
    });
    const node = await ch.read.nodeRegistry.read.nodeOf([operator]);
    expect(node.stake).toBe(E(150) + 1n);
    expect(await ch.tokenBalance(operator)).toBe(E(850) - 1n);
  });

  it("adds stake keeping the bound peer id, and prints the state as text", async () => {
    // --deployment may also name the <chainId>.json file itself (it comes after `common`, so it wins).
    const text = await run(
      stakeCommand,
      "--amount",
      "0.5",
      "--deployment",
      join(dir, "deployments", `${ch.chainId}.json`),
    );
    expect(text).toMatch(/^approve\s+0x[0-9a-f]{64} block \d+, gas \d+, success$/m);
    expect(text).toMatch(/^stake\s+150\.500000000000000001 OPEN \(minimum 100 OPEN, active\)$/m);
    expect(text).toMatch(/^endpoint\s+http:\/\/127\.0\.0\.1:8080$/m);
    expect(text).toContain(peerIdBytesHex(peerId));
  });

  it("unbonds, refuses to withdraw before the period ends, then withdraws exactly", async () => {
    const balance = await ch.tokenBalance(operator);
    const out = await runJson(unstakeCommand, "--amount", "60");
    expect(out.node).toMatchObject({ stake: "90.500000000000000001", unbonding: "60", active: false });
    const block = await ch.publicClient.getBlock();
    expect(out.node.unbondingEnd).toBe(new Date(Number(block.timestamp + 7n * 86400n) * 1000).toISOString());
    await expect(run(withdrawStakeCommand)).rejects.toThrow(/60 OPEN is unbonding until \d{4}-\d\d-\d\dT/);
    await ch.increaseTime(7 * 86400);
    const withdrawn = await runJson(withdrawStakeCommand);
    expect(withdrawn.transactions[0]).toMatchObject({ step: "withdrawStake", status: "success" });
    expect(withdrawn.node).toMatchObject({ unbonding: "0", unbondingEnd: null });
    expect(await ch.tokenBalance(operator)).toBe(balance + E(60));
    // With no --amount, unstake unbonds everything still bonded.
    const all = await runJson(unstakeCommand);
    expect(all.node).toMatchObject({ stake: "0", unbonding: "90.500000000000000001" });
    await expect(run(withdrawStakeCommand)).rejects.toThrow(/is unbonding until/);
  });

  it("refuses bad amounts, peer ids, endpoints and states with a message that names the problem", async () => {
    const cases: [() => Promise<unknown>, RegExp][] = [
      [
        () => run(stakeCommand, "--amount", "1.0000000000000000001"),
        /--amount must be a number of OPEN with at most 18 decimals/,
      ],
      [() => run(stakeCommand, "--amount=-5"), /--amount must be a number of OPEN/],
      [() => run(stakeCommand, "--amount", "1e3"), /--amount must be a number of OPEN/],
      [
        () => run(stakeCommand, "--amount", "5", "--peer-id", "not-a-peer"),
        /--peer-id "not-a-peer" is not a libp2p peer id/,
      ],
      [() => run(stakeCommand, "--amount", "5", "--api", "ftp://x"), /--api must be http or https/],
      [() => run(stakeCommand, "--amount", "5"), /the stake would be 5 OPEN, below the minimum of 100 OPEN/],
      [() => run(stakeCommand, "--amount", "5000"), /holds 9\d\d\.\d+ OPEN, less than 5000 OPEN/],
      [() => run(unstakeCommand, "--amount", "0"), /--amount must be above 0/],
      [() => run(unstakeCommand), /has no bonded stake to unbond/],
      [() => run(stakeCommand), /--amount is required/],
    ];
    for (const [call, message] of cases) await expect(call()).rejects.toThrow(message);
    await writeFile(join(dir, "wrong"), "wrong password");
    await expect(
      stakeCommand(["--amount", "100", ...common, "--password-file", join(dir, "wrong")], access),
    ).rejects.toThrow(/cannot decrypt keystore/);
    await expect(
      stakeCommand(["--amount", "100", ...common, "--deployment", join(dir, "nowhere")], access),
    ).rejects.toThrow(/--deployment .*nowhere does not exist/);
    await writeFile(join(dir, "deployment.json"), "{}");
    await expect(
      stakeCommand(["--amount", "100", ...common, "--deployment", join(dir, "deployment.json")], access),
    ).rejects.toThrow(/the chain's id is 31337, so its deployment file is 31337\.json/);
    await expect(
      stakeCommand(["--amount", "100", ...common, "--keystore", join(dir, "none.json")], access),
    ).rejects.toThrow(/no keystore at .*none\.json/);
    await expect(stakeCommand(["--amount", "100", ...common, "--rpc", "http://127.0.0.1:9"], {})).rejects.toThrow(
      /cannot reach the chain at http:\/\/127\.0\.0\.1:9/,
    );
  });
});
