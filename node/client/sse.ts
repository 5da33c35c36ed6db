// Server-Sent Events both ways, as the node's API and OpenAI's clients speak them: only `data:` events, one JSON
// object (or the literal [DONE]) each, separated by a blank line.

/** The `data:` payloads of an event stream, in order. Ends when the stream ends. */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      yield* completeEvents();
    }
  } finally {
    reader.releaseLock();
  }

  function* completeEvents(): Generator<string> {
    let end: number;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data !== "") yield data;
    }
  }
}

/** One event as the wire carries it. */
export function sseLine(data: unknown): string {
  return `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
}
