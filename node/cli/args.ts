import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** A command-line mistake: printed with the command's usage, exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface CommandSpec {
  /** e.g. "openlora generate --model <dir|file> --prompt <text> [options]" */
  usage: string;
  summary: string;
  options: ParseArgsOptionsConfig;
  /** One line of help per option, by name. */
  help: Record<string, string>;
  positionals?: number;
}

export interface ParsedCommand {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/** Parses argv for one command; --help prints its usage and returns null. */
export function parseCommand(spec: CommandSpec, argv: string[]): ParsedCommand | null {
  const options: ParseArgsOptionsConfig = { ...spec.options, help: { type: "boolean", short: "h" } };
  let parsed: ParsedCommand;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${usageText(spec)}`);
  }
  if (parsed.values.help) {
    console.log(usageText(spec));
    return null;
  }
  if (parsed.positionals.length !== (spec.positionals ?? 0)) {
    throw new UsageError(
      `expected ${spec.positionals ?? 0} argument(s), got ${parsed.positionals.length}\n\n${usageText(spec)}`,
    );
  }
  return parsed;
}

export function usageText(spec: CommandSpec): string {
  const lines = Object.entries(spec.help).map(([name, text]) => `  --${name.padEnd(16)} ${text}`);
  return `${spec.summary}\n\nUsage: ${spec.usage}\n\nOptions:\n${lines.join("\n")}\n  --help, -h         this help`;
}

/** A string option's value, or undefined. */
export function stringOption(values: ParsedCommand["values"], name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/** A required string option's value. */
export function required(values: ParsedCommand["values"], name: string): string {
  const value = stringOption(values, name);
  if (value === undefined || value === "") throw new UsageError(`--${name} is required`);
  return value;
}

/** A numeric option, checked to be finite and, when asked, an integer within bounds. */
export function numberOption(
  values: ParsedCommand["values"],
  name: string,
  fallback: number,
  rule: { integer?: boolean; min?: number; max?: number } = {},
): number {
  const value = stringOption(values, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${value}"`);
  if (rule.integer && !Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got ${value}`);
  if (rule.min !== undefined && n < rule.min)
    throw new UsageError(`--${name} must be at least ${rule.min}, got ${value}`);
  if (rule.max !== undefined && n > rule.max)
    throw new UsageError(`--${name} must be at most ${rule.max}, got ${value}`);
  return n;
}

/**
 * A --seed: an integer in [0, 2^32), the seeds the engine's generators take. Larger values (2^32, 1e300) are
 * refused by name instead of being cut to 32 bits, which would make them silently equal to seed 0.
 */
export function seedOption(values: ParsedCommand["values"], fallback: number): number {
  return numberOption(values, "seed", fallback, { integer: true, min: 0, max: 2 ** 32 - 1 });
}
