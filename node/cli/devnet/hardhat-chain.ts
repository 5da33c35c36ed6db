// The devnet's chain: Hardhat's own JSON-RPC node (`hardhat node`) as a child process on 127.0.0.1 and a free
// port. Started from the project's node_modules with this process's Node (Hardhat 3 needs Node 22), so the child's
// pid is the chain itself (npx would put a wrapper in between, and killing that leaves the chain running).
import { spawn } from "node:child_process";
import { realpathSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { OpenLoraError } from "../../engine/index.ts";

export const PROJECT_ROOT = join(import.meta.dirname, "../../..");
const CHAIN_CONFIG = join(import.meta.dirname, "hardhat-chain.config.ts");

/** The chain did not start, or stopped answering. */
export class ChainStartError extends OpenLoraError {
  override name = "ChainStartError";
}

export interface HardhatChain {
  rpcUrl: string;
  port: number;
  pid: number;
  /** Stops the chain (SIGTERM, then SIGKILL after a few seconds); resolves when it has exited. Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 5_000;

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startHardhatChain(options: { port?: number } = {}): Promise<HardhatChain> {
  const port = options.port ?? (await freePort());
  const entry = realpathSync(join(PROJECT_ROOT, "node_modules/.bin/hardhat"));
  const child = spawn(
    process.execPath,
    [entry, "--config", CHAIN_CONFIG, "node", "--hostname", "127.0.0.1", "--port", String(port)],
    {
      cwd: PROJECT_ROOT,
      env: { ...process.env, HARDHAT_DISABLE_TELEMETRY: "true", CI: "true" },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: Ctrl-C in a terminal signals the whole foreground group, and the chain must outlive
      // the nodes' shutdown (they settle on it) and be stopped last, by stop().
      detached: true,
    },
  );
  // Hardhat prints every call it serves; only the last lines are kept, to explain a failed start.
  const tail: string[] = [];
  const keep = (chunk: Buffer): void => {
    tail.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 20));
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  // If this process ends without stopping the chain (a crash, process.exit), the chain ends with it.
  const killOnExit = (): void => void child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const rpcUrl = `http://127.0.0.1:${port}`;
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      process.off("exit", killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) {
      throw new ChainStartError("chain_exited", `hardhat node exited with code ${child.exitCode}`, {
        blame: "node",
        hint: tail.join("\n"),
      });
    }
    if (await answers(rpcUrl)) return { rpcUrl, port, pid: child.pid as number, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new ChainStartError("chain_timeout", `hardhat node did not answer at ${rpcUrl} within 90 s`, {
        blame: "node",
        hint: tail.join("\n"),
      });
    }
    await sleep(200);
  }
}

/** True when eth_chainId answers at `url`. */
async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(2_000),
    });
    return response.ok && "result" in ((await response.json()) as object);
  } catch {
    return false;
  }
}
