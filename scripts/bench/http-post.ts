// POSTs JSON over one kept-alive connection and times each request to its answer's last byte (benchmarks).
import { Agent, request } from "node:http";

export interface HttpPoster {
  /** Milliseconds from sending to the last byte of a 200 answer; rejects on any other status. */
  post(path: string, body: unknown): Promise<number>;
  close(): void;
}

export function httpPoster(url: string): HttpPoster {
  const base = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const headers = { "content-type": "application/json" };
  return {
    post: (path, body) =>
      new Promise((resolve, reject) => {
        const start = performance.now();
        const req = request({ host: base.hostname, port: base.port, path, method: "POST", agent, headers }, (res) => {
          const status = res.statusCode;
          res.resume();
          res.on("end", () =>
            status === 200 ? resolve(performance.now() - start) : reject(new Error(`HTTP ${status}`)),
          );
        });
        req.on("error", reject);
        req.end(JSON.stringify(body));
      }),
    close: () => agent.destroy(),
  };
}
