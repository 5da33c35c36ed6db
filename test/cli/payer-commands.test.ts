// The payer's and contributor's commands (deposit, withdraw, adapter register, rewards, status, usage) called
// in-process against Hardhat's in-process chain (their EIP-1193 provider as the transport instead of --rpc),
// with a real keystore file and deployment file; a free node on 127.0.0.1 for `adapter register --node` and
// `usage`. Amounts are checked to the wei; each command's bad input is refused by name (UsageError: exit 2).
// `--help` of every command runs through the real executable.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { custom, formatUnits, getAddress, parseEther, type Address } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { listingIdOf, readListing, saveDeployment } from "../../node/chain/index.ts";
import { importKeystore, writeKeystoreFile } from "../../node/chain/keystore.ts";
import { UsageError } from "../../node/cli/args.ts";
import { adapterRegisterCommand } from "../../node/cli/commands/adapter-register.ts";
import { depositCommand } from "../../node/cli/commands/deposit.ts";
import { gatewayCommand } from "../../node/cli/commands/gateway.ts";
import { rewardsCommand } from "../../node/cli/commands/rewards.ts";
import type { ChainAccess } from "../../node/cli/commands/stake.ts";
import { statusCommand } from "../../node/cli/commands/status.ts";
import { usageCommand } from "../../node/cli/commands/usage.ts";
import { withdrawCommand } from "../../node/cli/commands/withdraw.ts";
import { ADAPTERS_DIR, postJson, startTestNode, type TestNode } from "../api/helpers.ts";
import { createChain, E, type Chain } from "../contracts/fixture.ts";
import { Cleanup, tempDir } from "../p2p/helpers.ts";
import { openlora } from "./run-cli.ts";

const cleanup = new Cleanup();
let ch: Chain;
let access: ChainAccess;
let me: Address;
let common: string[];
let dir: string;

beforeAll(async () => {
  ch = await createChain(); // withdrawal delay and window: 1 day each
  dir = await tempDir(cleanup, "openlora-payer-cli-");
  await saveDeployment(join(dir, "deployments"), ch.deployment);
  const privateKey = generatePrivateKey();
  await writeKeystoreFile(
    join(dir, "data", "keystore.json"),
    await importKeystore(privateKey, "pw", { scryptN: 1024 }),
  );
  await writeFile(join(dir, "password"), "pw\n");
  me = privateKeyToAccount(privateKey).address;
  await ch.testClient.setBalance({ address: me, value: parseEther("10") });
  await ch.fund(me, E(100));
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
  await cleanup.run();
  await ch.conn.close();
});

type Command = (argv: string[], access: ChainAccess) => Promise<void>;

/** Runs a command in this process with `flags` first and returns what it printed with console.log. */
async function runWith(flags: string[], command: Command, ...argv: string[]): Promise<string> {
  const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
  try {
    await command([...flags, ...argv], access);
    return log.mock.calls.map((c) => c.join(" ")).join("\n");
  } finally {
    log.mockRestore();
  }
}
/** With the keystore, password and deployment flags. */
const run = (command: Command, ...argv: string[]) => runWith(common, command, ...argv);
const runJson = async (command: Command, ...argv: string[]) => JSON.parse(await run(command, ...argv, "--json"));
/** Commands that read no secret (status) or no chain (usage). */
const readOnly = (): string[] => common.slice(0, 4);
const bare = (command: Command, ...argv: string[]) => runWith([], command, ...argv);
const usageError = (p: Promise<unknown>, message: RegExp) =>
  expect(p).rejects.toSatisfy((e: unknown) => e instanceof UsageError && message.test((e as Error).message));

describe("openlora deposit and withdraw", () => {
  it("deposits an exact amount for a node, approving first", async () => {
    const node = ch.nodeA.account.address;
    const out = await runJson(depositCommand, "--node", node, "--amount", "12.345678901234567891");
    expect(out.transactions.map((t: { step: string }) => t.step)).toEqual(["approve", "deposit"]);
    expect(out).toMatchObject({
      node,
      deposit: { balance: "12.345678901234567891", available: "12.345678901234567891", withdrawal: null },
      balance: "87.654321098765432109",
    });
    expect(await ch.read.escrow.read.balanceOf([me, node])).toBe(E("12.345678901234567891"));
  });

  it("refuses a bad address, a bad amount and more than the balance", async () => {
    await usageError(
      run(depositCommand, "--node", "0x1234", "--amount", "1"),
      /--node must be an address .* got "0x1234"/,
    );
    await usageError(
      run(depositCommand, "--node", ch.nodeA.account.address, "--amount", "1.0000000000000000001"),
      /--amount must be a number of OPEN with at most 18 decimals/,
    );
    await usageError(run(depositCommand, "--amount", "1"), /--node <address> is required/);
    await expect(run(depositCommand, "--node", ch.nodeA.account.address, "--amount", "1000")).rejects.toThrow(
      /holds 87\.654321098765432109 OPEN, less than the 1000 OPEN to deposit/,
    );
  });

  it("requests a withdrawal, refuses it before it matures, executes it after, and can cancel", async () => {
    const node = ch.nodeA.account.address;
    await expect(run(withdrawCommand, "--node", node, "--amount", "13")).rejects.toThrow(
      /cannot withdraw 13 OPEN: the deposit for node 0x[0-9a-fA-F]{40} is 12\.345678901234567891 OPEN/,
    );
    await expect(run(withdrawCommand, "--node", node, "--execute")).rejects.toThrow(/no withdrawal is pending/);
    const requested = await runJson(withdrawCommand, "--node", node, "--amount", "2.5");
    expect(requested.deposit).toMatchObject({ balance: "12.345678901234567891", available: "9.845678901234567891" });
    expect(requested.deposit.withdrawal.amount).toBe("2.5");
    await expect(run(withdrawCommand, "--node", node, "--execute")).rejects.toThrow(/matures at \d{4}-\d\d-\d\dT/);
    await ch.increaseTime(86400);
    const done = await runJson(withdrawCommand, "--node", node, "--execute");
    expect(done).toMatchObject({
      deposit: { balance: "9.845678901234567891", withdrawal: null },
      balance: "90.154321098765432109",
    });
    await runJson(withdrawCommand, "--node", node, "--amount", "1");
    const cancelled = await runJson(withdrawCommand, "--node", node, "--cancel");
    expect(cancelled.deposit).toMatchObject({ available: "9.845678901234567891", withdrawal: null });
    await usageError(
      run(withdrawCommand, "--node", node, "--amount", "1", "--execute"),
      /give one of --amount, --execute/,
    );
    await usageError(
      run(withdrawCommand, "--node", "0xnode", "--execute"),
      /--node must be an address .* got "0xnode"/,
    );
    await usageError(
      run(withdrawCommand, "--node", node, "--amount", "0.0000000000000000001"),
      /--amount must be a number of OPEN with at most 18 decimals/,
    );
  });
});

describe("openlora adapter register, rewards, usage and status", () => {
  let node: TestNode;
  let listingId: `0x${string}`;

  beforeAll(async () => {
    node = await startTestNode({ adapters: undefined });
    await writeFile(join(dir, "admin-token"), node.node.adminToken.token);
  });

  it("refuses attributions the registry would refuse, naming the problem", async () => {
    const robot = join(ADAPTERS_DIR, "robot");
    const c2 = ch.c2.account.address;
    await usageError(
      run(adapterRegisterCommand, robot, "--contributors", `${me}:6000,${c2}:3000`),
      /the weights sum to 9000 basis points; they must sum to exactly 10000/,
    );
    await usageError(
      run(adapterRegisterCommand, robot, "--contributors", `0xnope:6000,${c2}:4000`),
      /"0xnope" is not an address/,
    );
    await usageError(run(adapterRegisterCommand, robot, "--contributors", `${me}:5000,${me}:5000`), /named twice/);
    await usageError(run(adapterRegisterCommand, robot, "--contributors", `${me}`), /must be <address>:<basis points>/);
    await usageError(run(adapterRegisterCommand, robot), /--contributors is required/);
    await expect(
      run(adapterRegisterCommand, join(dir, "no-such-adapter"), "--contributors", `${me}:10000`),
    ).rejects.toThrow(/no-such-adapter/);
  });

  it("lists an adapter with its contributors and puts it in a node's store", async () => {
    const c2 = ch.c2.account.address;
    const out = await runJson(
      adapterRegisterCommand,
      join(ADAPTERS_DIR, "robot"),
      "--contributors",
      `${me}:6000,${c2}:4000`,
      "--uri",
      "ipfs://robot",
      "--node",
      node.node.url,
      "--alias",
      "bolt",
      "--admin-token-file",
      join(dir, "admin-token"),
    );
    listingId = out.listingId;
    expect(listingId).toBe(listingIdOf(me, out.contentHash));
    expect(out.node).toMatchObject({ id: "bolt", adapter: out.contentHash });
    const listing = await readListing(ch.publicClient, ch.deployment.contracts.AdapterRegistry, listingId);
    expect(listing).toMatchObject({
      registrant: me,
      contentHash: out.contentHash,
      uri: "ipfs://robot",
      live: true,
      contributors: [
        { contributor: me, weightBps: 6000 },
        { contributor: getAddress(c2), weightBps: 4000 },
      ],
    });
    await expect(
      run(adapterRegisterCommand, join(ADAPTERS_DIR, "robot"), "--contributors", `${me}:10000`),
    ).rejects.toThrow(/already listed adapter/);
  });

  it("shows what the contributor share can claim, claims it exactly, then has nothing to claim", async () => {
    // A payer's voucher for the listing, settled by a staked node, fills the listing's contributor pool.
    await ch.stakeNode(ch.nodeB);
    await ch.depositFor(ch.payerA, ch.nodeB, E(10));
    await ch.settle(ch.nodeB, [await ch.signed(ch.payerA, ch.nodeB, listingId, E(3))]);
    const claimable = await ch.read.escrow.read.claimable([listingId, me]);
    expect(claimable).toBeGreaterThan(0n);
    const shown = await runJson(rewardsCommand);
    expect(shown).toMatchObject({
      contributor: me,
      listings: [{ listingId, weightBps: 6000, claimable: formatOpen(claimable), claimed: "0" }],
    });
    const before = await ch.tokenBalance(me);
    const claimed = await runJson(rewardsCommand, "--claim");
    expect(claimed.claimed).toBe(formatOpen(claimable));
    expect(await ch.tokenBalance(me)).toBe(before + claimable);
    expect(claimed.listings[0]).toMatchObject({ claimable: "0", claimed: formatOpen(claimable) });
    await expect(run(rewardsCommand, "--claim")).rejects.toThrow(/has nothing to claim yet/);
    await usageError(run(rewardsCommand, "--address", "0xzz"), /--address must be an address/);
  });

  it("reports usage from a running node and from a stopped node's ledger", async () => {
    const answer = await postJson(node.node.url, "/v1/completions", { model: "bolt", prompt: "Hi", max_tokens: 3 });
    expect(answer.status).toBe(200);
    const live = JSON.parse(await bare(usageCommand, "--adapter", "bolt", "--node", node.node.url, "--json"));
    expect(live.total).toMatchObject({ requests: 1, completionTokens: 3, cost: "0" });
    await node.node.stop();
    const offline = JSON.parse(await bare(usageCommand, "--adapter", "bolt", "--data-dir", node.dataDir, "--json"));
    expect(offline.total).toEqual(live.total);
    await usageError(bare(usageCommand, "--adapter", "nope", "--data-dir", node.dataDir), /unknown adapter "nope"/);
    await usageError(bare(usageCommand, "--adapter", "bolt"), /give --node <API URL> or --data-dir/);
  });

  it("shows the chain, deposits and (no) channels, reading only the keystore's address", async () => {
    const status = JSON.parse(await runWith(readOnly(), statusCommand, "--json"));
    expect(status.chain).toMatchObject({ chainId: ch.chainId, contracts: ch.deployment.contracts });
    expect(status.account.address).toBe(me);
    expect(status.deposits).toEqual([
      {
        node: ch.nodeA.account.address,
        balance: "9.845678901234567891",
        available: "9.845678901234567891",
        withdrawal: null,
      },
    ]);
    expect(status.channels).toEqual([]);
    expect(status.spending).toMatchObject({ lastHour: "0", perRequest: null, perHour: null, gateway: null });
    const text = await runWith(readOnly(), statusCommand);
    expect(text).toMatch(
      /^deposit\s+node 0x[0-9a-fA-F]{40}: 9\.845678901234567891 OPEN, available 9\.845678901234567891 OPEN$/m,
    );
    await usageError(
      statusCommand(["--deployment", join(dir, "deployments"), "--data-dir", join(dir, "nowhere")], access),
      /no keystore at .*: give --address/,
    );
    await usageError(
      runWith(readOnly(), statusCommand, "--address", "0x12"),
      /--address must be an address .* got "0x12"/,
    );
  });
});

describe("openlora gateway's bad input", () => {
  it("is refused before anything starts", async () => {
    await usageError(gatewayCommand(["--listen", "localhost"], access), /--listen must be host:port/);
    await usageError(
      gatewayCommand([...common, "--listen", "127.0.0.1:0"], access),
      /--bootstrap <multiaddr> or --peers-from/,
    );
    await usageError(
      gatewayCommand([...common, "--peers-from", "http://127.0.0.1:1", "--max-per-hour", "ten"], access),
      /--max-per-hour must be a number of OPEN/,
    );
  });
});

describe("every payer command", () => {
  it("has --help", async () => {
    const commands = [
      ["deposit"],
      ["withdraw"],
      ["infer"],
      ["gateway"],
      ["rewards"],
      ["usage"],
      ["status"],
      ["adapter", "register"],
    ];
    const runs = await Promise.all(commands.map((c) => openlora(...c, "--help")));
    for (const [i, r] of runs.entries()) {
      expect(r.code, commands[i].join(" ")).toBe(0);
      expect(r.stdout).toMatch(/Usage: openlora/);
      expect(r.stdout).toMatch(/--json/);
    }
    const bad = await openlora("deposit", "--node", "nope", "--amount", "1");
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringMatching(/--node must be an address/) });
  }, 360_000);
});

function formatOpen(wei: bigint): string {
  return formatUnits(wei, 18);
}
