// PEFT's rank_pattern / alpha_pattern rule, matched without backtracking. PEFT (peft/utils/other.py,
// get_pattern_key) walks the keys in order and takes the first for which
//   re.match(rf"(.*\.)?({key})$", module_name)
// matches, so a key is a Python regular expression. Compiling a key from a downloaded adapter_config.json
// with JavaScript's backtracking RegExp lets a key such as "(a+)+b" hang the process; RE2 (re2js) matches in
// time linear in the name and refuses what it cannot match that way (backreferences, lookaround) by name.
// Module names are short ASCII dotted paths without newlines, where RE2's and Python's readings agree
// (`$` at the end, `.` not matching "\n", `\d` and `\w` on ASCII).
import { RE2JS } from "re2js";

/** Longest key accepted: real keys are module paths (tens of characters). */
export const MAX_PATTERN_KEY_CHARS = 1024;
/** Most keys per pattern: one per module of the largest models, with room. */
export const MAX_PATTERN_KEYS = 4096;

/** One key of a pattern with its value, compiled once. */
export interface ModulePattern {
  key: string;
  value: number;
  regex: RE2JS;
}

/**
 * Compiles a pattern's keys in their order; `refuse(problem)` throws the caller's error (naming file and field)
 * for a key that is too long or is not a regular expression RE2 can run.
 */
export function compileModulePatterns(
  entries: [string, number][],
  refuse: (problem: string) => never,
): ModulePattern[] {
  if (entries.length > MAX_PATTERN_KEYS) refuse(`has ${entries.length} keys, at most ${MAX_PATTERN_KEYS} are accepted`);
  return entries.map(([key, value]) => {
    if (key.length > MAX_PATTERN_KEY_CHARS) {
      refuse(`key of ${key.length} characters exceeds ${MAX_PATTERN_KEY_CHARS}`);
    }
    try {
      return { key, value, regex: RE2JS.compile(`(.*\\.)?(${key})`) };
    } catch (error) {
      return refuse(`key ${JSON.stringify(key)} is not a usable regular expression: ${(error as Error).message}`);
    }
  });
}

/** The value of the first key that matches the whole module name, as PEFT picks it; undefined when none does. */
export function modulePatternValue(patterns: readonly ModulePattern[], moduleName: string): number | undefined {
  for (const pattern of patterns) if (pattern.regex.matches(moduleName)) return pattern.value;
  return undefined;
}
