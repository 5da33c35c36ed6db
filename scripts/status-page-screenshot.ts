// The README's picture: runs the devnet (as `npm start` does), opens node-1's status page in headless chromium
// once its chart has points, saves a screenshot, and stops the devnet.
//   bash scripts/run.sh node scripts/status-page-screenshot.ts [--out docs/status-page.png] [--node node-1]
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { startDevnet } from "../node/cli/devnet/devnet.ts";
import { launchChromium } from "./chromium.ts";

const { values } = parseArgs({ options: { out: { type: "string" }, node: { type: "string" } }, strict: true });
const out = values.out ?? join(import.meta.dirname, "../docs/status-page.png");
const launched = await launchChromium();
if (!("browser" in launched)) throw new Error(launched.unavailable);
const dataDir = await mkdtemp(join(tmpdir(), "openlora-screenshot-"));
const devnet = await startDevnet({ dataDir, backend: "auto", progress: (line) => console.error(line) });
try {
  const node = devnet.nodes.find((n) => n.plan.name === (values.node ?? "node-1"));
  if (!node) throw new Error(`no node named ${values.node}`);
  const page = await launched.browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${node.url}/`);
  await page.waitForFunction(() => Number(document.getElementById("throughput")?.dataset.nonzeroPoints) > 0);
  await mkdir(dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  console.error(`wrote ${out} (${node.plan.name}, ${node.url})`);
} finally {
  await launched.browser.close();
  await devnet.stop();
  await rm(dataDir, { recursive: true, force: true });
}
