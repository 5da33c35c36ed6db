// Debian's chromium for the browser test and the README's screenshot, driven by playwright-core: made available
// by scripts/ensure-chromium.sh (installed on first use), launched headless with the flags known to work on these
// machines (without the background-networking ones chromium dials out, and the closed network refuses it).
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A headless chromium, or why there is none (no root to install it, no package registry, it does not run). */
export async function launchChromium(): Promise<{ browser: Browser } | { unavailable: string }> {
  try {
    await promisify(execFile)("bash", [join(import.meta.dirname, "ensure-chromium.sh")], { timeout: 600_000 });
    return { browser: await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS }) };
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    return { unavailable: `chromium is not available: ${(e.stderr || e.message).trim().split("\n").pop()}` };
  }
}
