// One JSON object per line, for machines first (log shippers, jq) and still readable: time, level, event, fields.
// bigint fields are written as decimal strings (wei amounts).
import type { Writable } from "node:stream";
import { toJson } from "./json.ts";

export type LogLevel = "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  log(level: LogLevel, event: string, fields?: LogFields): void;
}

/** Writes to a stream (the node's stdout by default). */
export function jsonLogger(out: Writable = process.stdout): Logger {
  return {
    log(level, event, fields = {}) {
      out.write(`${toJson({ time: new Date().toISOString(), level, event, ...fields })}\n`);
    },
  };
}

/** Drops every line (tests that do not read the log). */
export const silentLogger: Logger = { log() {} };

/** An error's message and code for a log line; the stack only for the node's own faults. */
export function errorFields(error: unknown): LogFields {
  const e = error as { message?: unknown; code?: unknown; blame?: unknown; stack?: unknown };
  const fields: LogFields = { error: typeof e?.message === "string" ? e.message : String(error) };
  if (typeof e?.code === "string") fields.code = e.code;
  if (e?.blame === undefined || e.blame === "node") fields.stack = e?.stack;
  return fields;
}
