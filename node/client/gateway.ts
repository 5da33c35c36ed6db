// The gateway: a local OpenAI-compatible endpoint on the user's machine. Every completion and chat request is
// routed, paid, verified and failed over by the client (paidFetch), so any existing app (LangChain, an IDE
// plugin, curl) uses the network with only its base URL changed. GET /status tells the payer's spending against
// its limits, channels and disputes; GET /health that it runs.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { PayingClient } from "./paying-client.ts";

/** Request bodies larger than this are refused (a completion request is a few KiB). */
const MAX_BODY = 4 * 1024 * 1024;

export interface GatewayOptions {
  client: PayingClient;
  host: string;
  /** 0: a free port. */
  port: number;
  /** One line per request served (status, path, ms). */
  log?: (line: Record<string, unknown>) => void;
}

export class Gateway {
  readonly url: string;
  readonly #server: Server;

  private constructor(server: Server, url: string) {
    this.#server = server;
    this.url = url;
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    const server = createServer((req, res) => {
      const started = performance.now();
      serve(options.client, req, res)
        .catch((error: unknown) => {
          if (!res.headersSent) {
            res.writeHead(500, { "content-type": "application/json" });
            res.end(
              JSON.stringify({
                error: { message: (error as Error).message, type: "server_error", code: "gateway_error" },
              }),
            );
          } else res.destroy(error as Error);
        })
        .finally(() =>
          options.log?.({
            method: req.method,
            path: req.url,
            status: res.statusCode,
            ms: Math.round(performance.now() - started),
          }),
        );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.host, () => resolve());
    });
    const { address, port } = server.address() as AddressInfo;
    const host = address.includes(":") ? `[${address}]` : address;
    return new Gateway(server, `http://${host}:${port}`);
  }

  /** Stops listening and ends the connections left. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}

async function serve(client: PayingClient, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method === "GET" && path === "/health") return sendJson(res, 200, { status: "ok", payer: client.payer });
  if (req.method === "GET" && path === "/status") return sendJson(res, 200, await statusJson(client));
  const abort = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) abort.abort(new Error("the caller went away"));
  });
  const body = req.method === "GET" || req.method === "HEAD" ? undefined : await readBody(req);
  if (body === null)
    return sendJson(res, 413, {
      error: { message: `the body is over ${MAX_BODY} bytes`, type: "invalid_request_error", code: "body_too_large" },
    });
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
  const response = await client.fetch(`http://gateway${req.url ?? "/"}`, {
    method: req.method,
    headers,
    body: body === undefined ? undefined : new Uint8Array(body),
    signal: abort.signal,
  });
  const out: Record<string, string> = {};
  response.headers.forEach((value, name) => (out[name] = value));
  res.writeHead(response.status, out);
  if (!response.body) return void res.end();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await new Promise((resolve) => res.once("drain", resolve).once("close", resolve));
      if (res.destroyed) {
        await reader.cancel();
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
  res.end();
}

async function readBody(req: IncomingMessage): Promise<Buffer | null> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req) {
    size += (part as Buffer).length;
    if (size > MAX_BODY) return null;
    parts.push(part as Buffer);
  }
  return Buffer.concat(parts);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
}

/** The payer's spending, limits, channels and disputes (wei as decimal strings). */
export async function statusJson(client: PayingClient): Promise<Record<string, unknown>> {
  const s = await client.status();
  return {
    payer: client.payer,
    chainId: client.deployment.chainId,
    escrow: client.deployment.contracts.InferenceEscrow,
    limits: {
      perRequest: s.spending.limits.perRequest?.toString() ?? null,
      perHour: s.spending.limits.perHour?.toString() ?? null,
    },
    spentLastHour: s.spending.lastHour.toString(),
    held: s.spending.held.toString(),
    channels: s.channels,
    disputes: s.disputes,
    stateFile: s.stateFile,
  };
}
