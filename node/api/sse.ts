// Server-Sent Events on a raw HTTP response, with backpressure: a send waits while the socket's buffer is full,
// so a slow reader holds its own request's chunks (queued in the engine's stream) and nobody else's.
import type { ServerResponse } from "node:http";

export class SseWriter {
  readonly #res: ServerResponse;
  #closed = false;

  constructor(res: ServerResponse, headers: Record<string, string>) {
    this.#res = res;
    res.once("close", () => {
      this.#closed = true;
    });
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...headers,
    });
    res.flushHeaders();
  }

  /** The client went away (or the response ended). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one `data:` event (JSON, or the literal [DONE]); resolves once the socket can take more. */
  async send(data: unknown): Promise<void> {
    if (this.#closed) return;
    const line = `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
    if (this.#res.write(line)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.#res.off("drain", done);
        this.#res.off("close", done);
        resolve();
      };
      this.#res.on("drain", done);
      this.#res.on("close", done);
    });
  }

  end(): void {
    if (!this.#closed) this.#res.end();
  }
}
