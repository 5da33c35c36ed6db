// A benchmark's HTTP client in a process of its own (forked with an IPC channel), so that the server's process
// does only the server's work: its CPU time per request is then the API's cost alone. Each message { path, body }
// is answered with the milliseconds from sending the request to the answer's last byte, measured here.
import { Agent, request } from "node:http";

const base = new URL(process.argv[2]);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function post(path: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = request(
      {
        host: base.hostname,
        port: base.port,
        path,
        method: "POST",
        agent,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        const status = res.statusCode;
        res.resume();
        res.on("end", () =>
          status === 200 ? resolve(performance.now() - start) : reject(new Error(`HTTP ${status}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

process.on("message", (message: { path: string; body: unknown } | "close") => {
  if (message === "close") {
    agent.destroy();
    process.disconnect();
    return;
  }
  post(message.path, message.body).then(
    (ms) => process.send!({ ms }),
    (error: unknown) => process.send!({ error: (error as Error).message }),
  );
});
