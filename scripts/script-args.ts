// The options of the project's scripts (benchmarks, mutation runs): node's parseArgs, plus `--help` printing each
// option with its meaning and default, and a bad option answered with the usage instead of Node's stack trace.
import { parseArgs, type ParseArgsOptionDescriptor } from "node:util";

export type ScriptOption = ParseArgsOptionDescriptor & { help: string };

type Parsed<O extends Record<string, ScriptOption>> = ReturnType<
  typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>
>["values"];

/** The script's option values; prints the help and exits 0 on `--help`, prints the usage and exits 2 on a bad one. */
export function scriptArgs<const O extends Record<string, ScriptOption>>(
  about: string,
  usage: string,
  options: O,
): Parsed<O> {
  const help = (): string =>
    [
      about,
      "",
      `usage: ${usage}`,
      "",
      ...Object.entries(options).map(([name, o]) => {
        const value = o.type === "string" ? " <value>" : "";
        const given = o.default === undefined ? "" : ` (default ${String(o.default)})`;
        return `  --${name}${value}`.padEnd(28) + ` ${o.help}${given}`;
      }),
    ].join("\n");
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(help());
    process.exit(0);
  }
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Parsed<O>;
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${help()}`);
    process.exit(2);
  }
}
