// The client's parts that need no network: the payer's state file (atomic writes, one change at a time across
// processes, a lock left by a dead process taken over), the receipt check (every way a receipt can fail, signed
// with real keys), the SSE reader (events split anywhere), the spending limits, and the attribution check.
import { fork, spawnSync } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { getAddress, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, describe, expect, it } from "vitest";
import { receiptJson, signReceipt, type Receipt } from "../../node/chain/index.ts";
import {
  AttributionError,
  checkAttribution,
  checkReceipt,
  PayerState,
  ReceiptError,
  SpendingGuard,
  SpendingLimitError,
  type ReceiptExpectation,
} from "../../node/client/index.ts";
import { sseEvents } from "../../node/client/sse.ts";
import { Cleanup, tempDir } from "../p2p/helpers.ts";

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

const node = privateKeyToAccount(generatePrivateKey());
const payer = privateKeyToAccount(generatePrivateKey()).address;
const escrow = { chainId: 31337, verifyingContract: getAddress(`0x${"12".repeat(20)}`) };
const listingId = `0x${"aa".repeat(32)}` as Hex;
const adapter = `0x${"bb".repeat(32)}` as Hex;
const scope = { chainId: 31337, escrow: escrow.verifyingContract, payer };

describe("the payer's state file", () => {
  it("keeps every change of concurrent writers, including other processes, and writes whole files", async () => {
    const dir = await tempDir(cleanup, "openlora-state-");
    const a = new PayerState(dir, scope);
    const b = new PayerState(dir, scope); // another writer on the same file (another gateway or CLI)
    const writes = Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).noteUnreceipted(node.address, listingId, 1n));
    // A child process writes the same file at the same time, through the lock file.
    const child = fork(join(import.meta.dirname, "state-writer.ts"), [dir, JSON.stringify(scope), "20"], {
      execArgv: [],
    });
    await Promise.all([...writes, new Promise((resolve) => child.once("exit", resolve))]);
    expect(child.exitCode).toBe(0);
    expect(await a.spentSince(0)).toBe(40n);
    const files = await readdir(dir);
    expect(files.filter((f) => f.endsWith(".tmp") || f.endsWith(".lock"))).toEqual([]);
    expect(JSON.parse(await readFile(a.path, "utf8"))).toMatchObject({ version: 1, payer });
  });

  it("takes over a lock left by a process that died holding it", async () => {
    const dir = await tempDir(cleanup, "openlora-state-");
    const state = new PayerState(dir, scope);
    await state.noteSigned(node.address, listingId, 5n);
    const dead = spawnSync(process.execPath, ["-e", ""]); // a process that has exited
    await writeFile(`${state.path}.lock`, String(dead.pid));
    await state.noteSigned(node.address, listingId, 7n);
    expect(await state.channel(node.address, listingId)).toMatchObject({ signed: 7n, consumed: 0n });
  });

  it("refuses a file of another payer or deployment", async () => {
    const dir = await tempDir(cleanup, "openlora-state-");
    const mine = new PayerState(dir, scope);
    await mine.noteSigned(node.address, listingId, 1n);
    const text = (await readFile(mine.path, "utf8")).replace(`"chainId": 31337`, `"chainId": 1`);
    await writeFile(mine.path, text);
    await expect(mine.read()).rejects.toThrow(/belongs to chain 1/);
  });
});

describe("a node's receipt", () => {
  const base: Receipt = {
    requestId: "cmpl-1",
    payer,
    node: node.address,
    listingId,
    adapter,
    promptTokens: 5n,
    completionTokens: 3n,
    cost: 8000n,
    cumulativeConsumed: 18000n,
    voucherAmount: 30000n,
  };
  const expectation: ReceiptExpectation = {
    escrow,
    payer,
    node: node.address,
    listingId,
    contentHash: adapter,
    voucherAmount: 30000n,
    maxCost: 1000n * (5n + 16n),
    pricePerToken: 1000n,
  };
  const signed = async (r: Receipt, signer = node) => receiptJson(r, await signReceipt(signer, r, escrow));
  const failure = async (json: unknown): Promise<string> => {
    const error = await checkReceipt(json, expectation).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReceiptError);
    return `${(error as ReceiptError).code}: ${(error as Error).message}`;
  };

  it("is adopted when it is the node's signature over this request within what was signed", async () => {
    expect(await checkReceipt(await signed(base), expectation)).toEqual(base);
    // Consumed exactly up to the voucher is still within what was signed.
    const full = { ...base, cumulativeConsumed: 30000n };
    expect(await checkReceipt(await signed(full), expectation)).toEqual(full);
  });

  it("claiming more than was signed is an overclaim", async () => {
    expect(await failure(await signed({ ...base, cumulativeConsumed: 30001n }))).toMatch(
      /^receipt_overclaim: .*claims 30001 wei consumed on the channel, more than the 30000 wei the payer signed/,
    );
    const dear = { ...base, promptTokens: 10n, completionTokens: 12n, cost: 22000n };
    expect(await failure(await signed(dear))).toMatch(
      /^receipt_overclaim: .*charges 22000 wei, more than the request's most of 21000/,
    );
  });

  it("is invalid when forged, for another request, mispriced or malformed", async () => {
    const stranger = privateKeyToAccount(generatePrivateKey());
    expect(await failure(await signed(base, stranger))).toMatch(/^receipt_invalid: .*not signed by the node/);
    const tampered = { ...(await signed(base)), cumulative_consumed: "1" };
    expect(await failure(tampered)).toMatch(/^receipt_invalid: .*not signed by the node/);
    expect(await failure(await signed({ ...base, payer: stranger.address }))).toMatch(/receipt is for payer/);
    expect(await failure(await signed({ ...base, listingId: adapter }))).toMatch(/names listing/);
    expect(await failure(await signed({ ...base, voucherAmount: 29999n }))).toMatch(/names a voucher of 29999 wei/);
    expect(await failure(await signed({ ...base, cost: 7000n }))).toMatch(/charges 7000 wei for 8 tokens at 1000 wei/);
    expect(await failure({ ...(await signed(base)), cost: "-1" })).toMatch(
      /receipt\.cost must be a uint256 in decimal/,
    );
    expect(await failure(undefined)).toMatch(/carries no receipt/);
  });
});

describe("the SSE reader", () => {
  it("yields each data payload whole however the bytes are cut, and ends with the stream", async () => {
    const text = 'data: {"a":1}\n\ndata: {"b":"x\\ny"}\r\n\r\n: comment\n\ndata: [DONE]\n\n';
    const bytes = new TextEncoder().encode(text);
    for (const cut of [1, 3, 7, bytes.length]) {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += cut) controller.enqueue(bytes.slice(i, i + cut));
          controller.close();
        },
      });
      const out: string[] = [];
      for await (const data of sseEvents(stream)) out.push(data);
      expect(out).toEqual(['{"a":1}', '{"b":"x\\ny"}', "[DONE]"]);
    }
  });
});

describe("spending limits", () => {
  it("refuses a request over the per-request limit, and the hour's spending plus held requests over the hourly one", async () => {
    const state = new PayerState(await tempDir(cleanup, "openlora-state-"), scope);
    const guard = new SpendingGuard({ perRequest: 100n, perHour: 250n }, state);
    await expect(guard.hold(101n)).rejects.toThrow(SpendingLimitError);
    const release = await guard.hold(100n);
    await state.noteUnreceipted(node.address, listingId, 100n);
    const error = await guard.hold(51n).catch((e: unknown) => e);
    expect(error).toMatchObject({ limit: "per_hour", wanted: 251n, allowed: 250n });
    release();
    expect(await guard.hold(50n)).toBeTypeOf("function");
    expect(await guard.view()).toMatchObject({ lastHour: 100n, held: 50n });
  });
});

describe("an attribution", () => {
  it("is refused by name when the registry would refuse it", () => {
    const c = (n: number) => getAddress(`0x${n.toString(16).padStart(40, "0")}`);
    expect(checkAttribution([{ contributor: c(1), weightBps: 10_000 }])).toHaveLength(1);
    const refused = (list: { contributor: string; weightBps: number }[], message: RegExp) =>
      expect(() => checkAttribution(list as never)).toThrow(
        expect.objectContaining({ message: expect.stringMatching(message) }),
      );
    refused([], /at least one contributor/);
    refused([{ contributor: c(1), weightBps: 9_999 }], /sum to 9999 basis points/);
    refused([{ contributor: c(0), weightBps: 10_000 }], /not a contributor address/);
    refused(
      [
        { contributor: c(1), weightBps: 0 },
        { contributor: c(2), weightBps: 10_000 },
      ],
      /whole number of basis points/,
    );
    refused(
      Array.from({ length: 65 }, (_, i) => ({ contributor: c(i + 1), weightBps: 1 })),
      /65 contributors, at most 64/,
    );
    expect(() => checkAttribution([])).toThrow(AttributionError);
  });
});
