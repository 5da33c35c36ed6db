import type { Engine } from "./engine.ts";
import type { Completion, EngineRequest } from "./types.ts";

/** A whole request's outcome with its decode speed. */
export interface CompleteResult extends Completion {
  /** Milliseconds per generated token after the first (the prefill and queue are excluded). */
  msPerToken: number;
}

/**
 * One request through the engine, start to end: the one-shot way to generate (CLI, demos, tests).
 * `onText` receives each piece of text as it becomes final; the pieces add up to the result's text.
 */
export async function complete(
  engine: Engine,
  request: EngineRequest,
  onText?: (text: string) => void,
): Promise<CompleteResult> {
  const stream = engine.submit(request);
  if (onText) {
    for await (const event of stream) if (event.type !== "usage" && event.text) onText(event.text);
  }
  const completion = await stream.result;
  const { usage } = completion;
  const decoded = usage.completionTokens - 1;
  const msPerToken = decoded > 0 ? (usage.timings.totalMs - usage.timings.ttftMs) / decoded : 0;
  return { ...completion, msPerToken };
}
