// xpi dashboard, usage and cost view: GET /v1/usage (through the signing proxy, or signed in the page behind
// the API's sign-in), as a table (one row per group, a row of totals), a bar per group of its dollars and
// charts (per day: requests, blocked, errors and dollars; per group: tokens). Every figure carries
// data-figure="<group>.<figure>" (what a browser test reads). CSV and JSON are fetched like every other
// call (so signed behind the sign-in, where a plain link could not be) and saved from a Blob.
"use strict";

const USAGE = "/v1/usage";
const FIGURES = ["requests", "completed", "blocked", "errors", "input_tokens", "output_tokens",
  "cache_read_input_tokens", "cache_write_input_tokens", "response_cache_hits", "usd", "saved_usd"];
const $ = (id) => document.getElementById(id);

function isoDay(date) { return date.toISOString().slice(0, 10); }

function query(format) {
  const params = new URLSearchParams({ from: $("u-from").value, to: $("u-to").value, group_by: $("u-group").value });
  if (format) params.set("format", format);
  return `${USAGE}?${params.toString()}`;
}

function row(tag, values) {
  const tr = document.createElement("tr");
  for (const value of values) {
    const cell = document.createElement(tag);
    cell.textContent = value == null ? "" : String(value);
    tr.appendChild(cell);
  }
  return tr;
}

function charts(report) {
  const series = (report.insights && report.insights.series) || [];
  const days = series.map((p) => p.bucket.slice(5));
  bars($("u-chart-daily"), [series.map((p) => p.requests), series.map((p) => p.blocked), series.map((p) => p.errors)],
    ["#2b6cb0", "#8a4b00", "#c53030"], days);
  lines($("u-chart-usd"), [series.map((p) => p.usd)], ["#2f855a"], ["usd"]);
  const names = report.rows.map((r) => report.group_by.map((d) => r.group[d]).join(" / "));
  bars($("u-chart-tokens"), [report.rows.map((r) => r.input_tokens), report.rows.map((r) => r.output_tokens)],
    ["#2f855a", "#805ad5"], names);
}

function render(report) {
  const dims = report.group_by;
  const head = document.querySelector("#u-rows thead");
  head.replaceChildren(row("th", [...dims, ...FIGURES]));
  const body = document.querySelector("#u-rows tbody");
  body.replaceChildren();
  const bars = $("u-bars");
  bars.replaceChildren();
  const most = Math.max(...report.rows.map((r) => r.usd), 0);
  for (const r of report.rows) {
    const name = dims.map((d) => r.group[d]).join(" / ");
    const tr = row("td", [...dims.map((d) => r.group[d]), ...FIGURES.map((f) => r[f])]);
    FIGURES.forEach((f, i) => { tr.children[dims.length + i].dataset.figure = `${name}.${f}`; });
    body.appendChild(tr);
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.title = `${name}: $${r.usd}`;
    bar.style.width = `${most > 0 ? Math.max(1, (100 * r.usd) / most) : 1}%`;
    bar.textContent = `${name} $${r.usd.toFixed(6)}`;
    bars.appendChild(bar);
  }
  const total = row("th", ["total", ...Array(dims.length - 1).fill(""), ...FIGURES.map((f) => report.totals[f])]);
  FIGURES.forEach((f, i) => { total.children[dims.length + i].dataset.figure = `total.${f}`; });
  document.querySelector("#u-rows tfoot").replaceChildren(total);
}

// The report's insights: a row per day (data-figure="<day>.<figure>"), the anomalies it found, the leaders.
const SERIES = ["requests", "blocked", "errors", "error_rate", "latency_p50_ms", "latency_p95_ms", "usd"];
function renderInsights(insights) {
  if (!insights) return;
  document.querySelector("#u-series thead").replaceChildren(row("th", ["day", ...SERIES]));
  const body = document.querySelector("#u-series tbody");
  body.replaceChildren();
  for (const point of insights.series) {
    const tr = row("td", [point.bucket, ...SERIES.map((f) => point[f])]);
    SERIES.forEach((f, i) => { tr.children[1 + i].dataset.figure = `${point.bucket}.${f}`; });
    body.appendChild(tr);
  }
  const list = $("u-anomalies");
  list.replaceChildren();
  for (const a of insights.anomalies) {
    const li = document.createElement("li");
    li.dataset.anomaly = a.kind;
    const what = a.request_id ? ` ${a.subject} ${a.request_id}` : "";
    li.textContent = `${a.bucket} ${a.kind}${what}: ${a.metric} ${a.value} against ${a.baseline} (score ${a.score})`;
    list.appendChild(li);
  }
  if (!insights.anomalies.length) list.appendChild(Object.assign(document.createElement("li"), { textContent: "no anomaly" }));
  const names = (ranked) => ranked.map((r) => `${r.name} (${r.requests})`).join(", ") || "-";
  $("u-top").textContent = `top callers: ${names(insights.top_callers)}; models: ${names(insights.top_models)}; ` +
    `categories: ${names(insights.top_categories)}`;
}

let loads = 0; // the latest load wins: an earlier one answering later is dropped

async function load() {
  const mine = ++loads;
  const status = $("status-line");
  status.textContent = "loading...";
  status.classList.remove("error");
  try {
    const response = await fetch(query("json"), { headers: { "X-Xpi-Dashboard": "1" } });
    const body = await response.json();
    if (mine !== loads) return;
    if (!response.ok) throw new Error(`${response.status} ${(body.error && body.error.code) || body.message || body.Message}`);
    render(body);
    renderInsights(body.insights);
    charts(body);
    status.textContent = `${body.first_day} to ${body.last_day}: ${body.totals.requests} requests, $${body.totals.usd}`;
    document.body.dataset.loaded = "1";
  } catch (error) {
    status.textContent = `error: ${error.message}`;
    status.classList.add("error");
  }
}

async function download(format) {
  try {
    await saveExport(query(format), `xpi-usage-${$("u-from").value}-${$("u-to").value}.${format}`);
  } catch (error) {
    $("status-line").textContent = `error: ${error.message}`;
    $("status-line").classList.add("error");
  }
}

const today = new Date();
$("u-to").value = isoDay(today);
$("u-from").value = isoDay(new Date(today.getTime() - 6 * 86400000));
$("u-load").addEventListener("click", load);
$("u-csv").addEventListener("click", () => download("csv"));
$("u-json").addEventListener("click", () => download("json"));
load();
