// The status page's script (a plain ES module, no build step): polls GET /v1/stats every second and redraws.
// Everything peers announce is untrusted: it is put on the page as text (textContent), never as HTML.
/* global uPlot */
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

/** Wei (a decimal string) as OPEN with up to 18 decimals, exactly (BigInt, no floating point). */
function open(wei) {
  const value = BigInt(wei);
  const whole = value / 10n ** 18n;
  const fraction = (value % 10n ** 18n).toString().padStart(18, "0").replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}` : `${whole}`;
}

const short = (id) => (id.length > 18 ? `${id.slice(0, 10)}…${id.slice(-6)}` : id);

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (className) td.className = className;
  return td;
}

function tierCell(tier) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.className = `tier tier-${tier}`;
  span.textContent = tier;
  td.append(span);
  return td;
}

function fillTable(table, rows) {
  const body = $(table).tBodies[0];
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement("tr");
      tr.append(...cells);
      return tr;
    }),
  );
}

function fillList(list, pairs) {
  $(list).replaceChildren(
    ...pairs.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      return [dt, dd];
    }),
  );
}

let chart = null;

function drawThroughput(series) {
  const figure = $("throughput");
  const xs = series.tokens.map((_, i) => (series.start + i * series.intervalMs) / 1000);
  const perSecond = series.tokens.map((t) => t / (series.intervalMs / 1000));
  const data = [xs, perSecond];
  if (!chart) {
    chart = new uPlot(
      {
        width: Math.max(320, figure.clientWidth),
        height: 220,
        legend: { show: false },
        scales: { y: { range: (_, min, max) => [0, Math.max(10, max * 1.1)] } },
        series: [{}, { label: "tokens/s", stroke: "#3b6ff5", width: 2, fill: "rgba(59,111,245,0.12)" }],
        axes: [{}, { label: "tokens/s" }],
      },
      data,
      figure,
    );
    window.addEventListener("resize", () => chart.setSize({ width: Math.max(320, figure.clientWidth), height: 220 }));
  } else {
    chart.setData(data);
  }
  // What a test (or a curious reader) can check without reading the canvas.
  figure.dataset.points = String(xs.length);
  figure.dataset.nonzeroPoints = String(series.tokens.filter((t) => t > 0).length);
  figure.dataset.totalTokens = String(series.tokens.reduce((a, b) => a + b, 0));
}

function render(s) {
  const { kind, description } = s.node.device;
  const device = !description ? kind : description.startsWith(kind) ? description : `${kind} (${description})`;
  $("identity").textContent =
    `${s.node.model} on ${device} · ${s.node.mode} mode${s.node.peer_id ? ` · peer ${short(s.node.peer_id)}` : ""}`;
  $("updated").textContent = `up ${s.node.uptime_s} s · updated ${new Date().toLocaleTimeString()}`;
  $("tps-now").textContent = `${s.tokens.perSecond.toFixed(1)} now`;
  drawThroughput(s.throughput);

  fillList("queue", [
    ["running", s.queue.running],
    ["waiting", s.queue.waiting],
    ["waiting for an adapter", s.queue.waitingForAdapter],
    ["completed", s.completed],
    ["tokens generated", s.tokens.generated],
    ["prompt tokens", s.tokens.prompt],
  ]);

  const used = s.kv.totalBlocks - s.kv.freeBlocks;
  $("kv-bar").style.width = `${s.kv.totalBlocks ? (100 * used) / s.kv.totalBlocks : 0}%`;
  $("kv-text").textContent = `KV blocks ${used} / ${s.kv.totalBlocks} in use (${s.kv.blockSize} positions each)`;
  const aliasOf = new Map(s.adapters.map((a) => [a.id, a.aliases[0] ?? short(a.id)]));
  fillTable(
    "slots",
    s.slots.map((slot) => [
      cell(slot.slot),
      cell(slot.adapterId ? (aliasOf.get(slot.adapterId) ?? short(slot.adapterId)) : "—"),
      cell(slot.state),
      cell(slot.pins),
    ]),
  );

  const settlement = s.ledger.settlement;
  fillList("earnings", [
    ["requests (ledger)", s.ledger.requests],
    ["tokens billed", s.ledger.prompt_tokens + s.ledger.completion_tokens],
    ["billed (receipts)", `${open(s.ledger.earned)} OPEN`],
    ["settled (vouchers paid)", `${open(settlement.amount_paid)} OPEN`],
    ["settlement batches", `${settlement.batches_confirmed} confirmed, ${settlement.batches_failed} failed`],
    ["vouchers", `${settlement.vouchers_paid} paid, ${settlement.vouchers_skipped} skipped`],
    ["settlement gas", settlement.gas_used],
  ]);

  const usage = new Map(s.ledger.adapters.map((u) => [u.adapter, u]));
  const order = { gpu: 0, host: 1, disk: 2 };
  fillTable(
    "adapters",
    [...s.adapters]
      .sort((a, b) => order[a.tier] - order[b.tier] || a.id.localeCompare(b.id))
      .map((a) => {
        const u = usage.get(a.id);
        return [
          cell(short(a.id), "id"),
          cell(a.aliases.join(", ") || "—"),
          tierCell(a.tier),
          cell(a.bytes),
          cell(u ? u.requests : 0),
          cell(u ? u.prompt_tokens + u.completion_tokens : 0),
          cell(u ? open(u.earned) : "0"),
        ];
      }),
  );

  fillTable(
    "peers",
    s.peers.map((p) => [
      cell(`${short(p.peer_id)}${p.local ? " (this node)" : ""}`, "id"),
      cell(short(p.operator), "id"),
      cell(p.api || "—"),
      cell(p.adapters.map((a) => `${aliasOf.get(a.id) ?? short(a.id)} (${a.tier})`).join(", ") || "—"),
      cell(p.queue_depth),
      cell(open(p.price_per_token)),
    ]),
  );
}

async function poll() {
  try {
    const response = await fetch("/v1/stats", { cache: "no-store" });
    if (!response.ok) throw new Error(`GET /v1/stats: ${response.status}`);
    render(await response.json());
  } catch (error) {
    $("updated").textContent = `not reachable: ${error.message}`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
