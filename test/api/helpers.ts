// Shared set-up of the API suites: a real node (cpu backend, stories260K with its three demo adapters) on
// 127.0.0.1, a fresh data folder, a log that the test can read.
import { mkdtemp } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeService, type LogFields, type Logger, type NodeServiceOptions } from "../../node/api/index.ts";
import { STORIES_DIR } from "../helpers/stories.ts";

export const ADAPTERS_DIR = join(STORIES_DIR, "adapters");

export interface TestNode {
  node: NodeService;
  /** Every log line the node wrote, parsed. */
  log: (LogFields & { level: string; event: string })[];
  dataDir: string;
}

export async function startTestNode(options: Partial<NodeServiceOptions> = {}): Promise<TestNode> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "openlora-api-")));
  const log: TestNode["log"] = [];
  const logger: Logger = { log: (level, event, fields = {}) => void log.push({ level, event, ...fields }) };
  const node = await NodeService.start({
    model: STORIES_DIR,
    backend: "cpu",
    adapters: ADAPTERS_DIR,
    api: { host: "127.0.0.1", port: 0 },
    log: logger,
    ...options,
    dataDir,
  });
  return { node, log, dataDir };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with exactly the given method, headers and body bytes (what fetch would normalize). */
export function rawRequest(
  base: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** POST a JSON body. */
export function postJson(
  base: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return rawRequest(base, "POST", path, {
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** The `data:` payloads of an SSE body, in order. */
export function sseData(body: string): string[] {
  return body
    .split("\n\n")
    .filter((block) => block.length > 0)
    .map((block) => {
      if (!block.startsWith("data: ")) throw new Error(`not an SSE data event: ${JSON.stringify(block)}`);
      return block.slice("data: ".length);
    });
}
