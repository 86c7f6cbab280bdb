// xpi dashboard, compare view: the JSON `xpi compare --json` prints (`--output FILE` saves it), either the
// latest saved one (GET /compare/latest.json from the signing proxy, same origin) or a file the operator
// opens here (read in the page, sent nowhere). One row per model as the CLI's table, then every request.
// Every figure carries data-figure="<model>.<figure>".
"use strict";

const COLUMNS = [
  ["requests", "requests"], ["completed", "answers"], ["errors", "errors"],
  ["p50_latency_ms", "p50 ms"], ["p95_latency_ms", "p95 ms"], ["mean_latency_ms", "mean ms"],
  ["input_tokens", "tokens in"], ["output_tokens", "tokens out"], ["cost_usd", "cost $"],
  ["score", "F1"], ["judge_score", "judge (1-10)"], ["judged", "graded"], ["judge_cost_usd", "judge cost $"],
];
const REQUEST_COLUMNS = ["prompt_id", "model", "status", "resolved", "latency_ms", "input_tokens", "output_tokens",
  "cost_usd", "score", "judge_score", "error"];
const $ = (id) => document.getElementById(id);

function text(value) {
  if (value == null) return "-";
  return typeof value === "number" ? String(Number(value.toPrecision(4))) : String(value);
}

function row(tag, values) {
  const tr = document.createElement("tr");
  for (const value of values) {
    const cell = document.createElement(tag);
    cell.textContent = tag === "th" ? String(value) : text(value);
    tr.appendChild(cell);
  }
  return tr;
}

function show(result, source) {
  if (!result || !Array.isArray(result.models)) throw new Error("not a comparison (xpi compare --json)");
  document.querySelector("#c-models thead").replaceChildren(row("th", ["model", ...COLUMNS.map((c) => c[1])]));
  const body = document.querySelector("#c-models tbody");
  body.replaceChildren();
  for (const m of result.models) {
    const tr = row("td", [m.model, ...COLUMNS.map((c) => m[c[0]])]);
    COLUMNS.forEach((c, i) => { tr.children[i + 1].dataset.figure = `${m.model}.${c[0]}`; });
    body.appendChild(tr);
  }
  document.querySelector("#c-requests thead").replaceChildren(row("th", REQUEST_COLUMNS));
  const requests = document.querySelector("#c-requests tbody");
  requests.replaceChildren(...(result.requests || []).map((r) => row("td", REQUEST_COLUMNS.map((c) => r[c]))));
  $("c-title").textContent = `${result.prompts || "prompts"}${result.judge ? `, judged by ${result.judge}` : ""}`;
  $("status-line").textContent = `${source}${result.created ? ` (${result.created})` : ""}`;
  $("status-line").classList.remove("error");
  document.body.dataset.loaded = "1";
}

function fail(error) {
  $("status-line").textContent = `error: ${error.message}`;
  $("status-line").classList.add("error");
}

async function latest() {
  try {
    const response = await fetch("/compare/latest.json");
    const body = await response.json();
    if (!response.ok) throw new Error(`${response.status} ${body.message || ""}`);
    show(body, "latest saved comparison");
  } catch (error) {
    fail(error);
  }
}

$("c-latest").addEventListener("click", latest);
$("c-file").addEventListener("change", async () => {
  const file = $("c-file").files[0];
  if (!file) return;
  try {
    show(JSON.parse(await file.text()), file.name);
  } catch (error) {
    fail(error);
  }
});
latest();
