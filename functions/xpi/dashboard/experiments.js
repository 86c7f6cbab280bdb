// xpi dashboard, experiments view: GET /v1/experiments/{name}/results through the signing proxy (same
// origin): one row per variant, the tests against the leader, and the stop rule's verdict. Every figure
// carries data-figure="<variant>.<figure>".
"use strict";

const FIGURES = ["model", "requests", "errors", "error_rate", "latency_p50_ms", "latency_p95_ms", "cost_usd",
  "feedback_count", "feedback_mean", "positive_rate"];
const TESTS = ["against", "positive_p", "positive_p_adjusted", "latency_p"];
const $ = (id) => document.getElementById(id);

function row(tag, values) {
  const tr = document.createElement("tr");
  for (const value of values) {
    const cell = document.createElement(tag);
    cell.textContent = value == null ? "" : (typeof value === "number" ? String(Number(value.toPrecision(4))) : String(value));
    tr.appendChild(cell);
  }
  return tr;
}

function table(id, names, rows, key) {
  document.querySelector(`#${id} thead`).replaceChildren(row("th", ["variant", ...names]));
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  for (const r of rows) {
    const tr = row("td", [r.variant, ...names.map((n) => r[n])]);
    names.forEach((n, i) => { tr.children[i + 1].dataset.figure = `${r.variant}.${key}${n}`; });
    body.appendChild(tr);
  }
}

async function load() {
  const status = $("status-line");
  const name = $("x-name").value.trim();
  if (!name) return;
  status.textContent = "loading...";
  status.classList.remove("error");
  try {
    const response = await fetch(`/v1/experiments/${encodeURIComponent(name)}/results`, { headers: { "X-Xpi-Dashboard": "1" } });
    const body = await response.json();
    if (!response.ok) throw new Error(`${response.status} ${(body.error && body.error.code) || body.message || body.Message}`);
    table("x-rows", FIGURES, body.variants, "");
    table("x-comparisons", TESTS, body.comparisons, "test.");
    $("x-verdict").textContent = body.verdict.summary;
    $("x-reason").textContent = `${body.verdict.reason} (${body.test})`;
    status.textContent = `${body.experiment}: ${body.status}, ${body.items_read} requests${body.truncated ? " (truncated)" : ""}`;
    document.body.dataset.loaded = "1";
  } catch (error) {
    status.textContent = `error: ${error.message}`;
    status.classList.add("error");
  }
}

$("x-load").addEventListener("click", load);
const named = new URLSearchParams(window.location.search).get("experiment");
if (named) { $("x-name").value = named; load(); }
