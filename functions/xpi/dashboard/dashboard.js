// xpi dashboard: plain JS and SVG, nothing fetched from anywhere but this page's own origin (the
// signing proxy, `xpi dashboard`, which forwards /v1/... to the IAM-authorised xpi API).
"use strict";

const REFRESH_MS = 2000; // the live stream; the issue asks for at least every 5 s
const STATS_REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const seen = new Set();
let firstLoad = true;

// The proxy's token came in the URL `xpi dashboard` printed and is now an HttpOnly cookie: take it out
// of the address bar and history.
if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", location.pathname);
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Content-Type": "application/json", "X-Xpi-Dashboard": "1", ...(options.headers || {}) },
  });
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch { body = { message: text }; }
  if (!response.ok) {
    const message = (body.error && `${body.error.code}: ${body.error.message}`) || body.message || body.Message || text;
    throw new Error(`${response.status} ${message}`);
  }
  return body;
}

function filters() {
  const params = new URLSearchParams();
  const minutes = Number($("f-since").value);
  params.set("since", new Date(Date.now() - minutes * 60000).toISOString());
  for (const [name, id] of [["status", "f-status"], ["decision", "f-decision"], ["model", "f-model"], ["caller", "f-caller"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  params.set("limit", "200");
  return params;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
}

function shortCaller(arn) { return (arn || "").split(/[:/]/).slice(-1)[0]; }

async function refreshRequests() {
  const body = await api("/v1/dashboard/requests?" + filters().toString());
  const tbody = document.querySelector("#requests tbody");
  tbody.replaceChildren();
  for (const r of body.requests) {
    const tr = document.createElement("tr");
    tr.dataset.requestId = r.request_id;
    tr.dataset.status = r.status;
    if (!firstLoad && !seen.has(r.request_id)) tr.classList.add("new");
    seen.add(r.request_id);
    cell(tr, (r.created_at || "").replace("T", " ").slice(0, 23));
    cell(tr, r.request_id, "rid");
    cell(tr, r.status, "s-" + r.status);
    cell(tr, r.classification ? r.classification.decision : "");
    cell(tr, (r.model && (r.model.resolved || r.model.requested)) || "");
    cell(tr, shortCaller(r.caller_principal));
    cell(tr, r.latency_ms);
    cell(tr, r.usage ? `${r.usage.input_tokens}/${r.usage.output_tokens}` : "");
    cell(tr, r.error ? r.error.code : "");
    tr.addEventListener("click", () => showDetail(r.request_id));
    tbody.appendChild(tr);
  }
  firstLoad = false;
  $("row-count").textContent = `(${body.requests.length})`;
  $("status-line").textContent = "updated " + new Date(body.generated_at).toLocaleTimeString();
  $("status-line").className = "status";
  $("status-line").dataset.updatedAt = body.generated_at;
}

async function showDetail(id) {
  const r = await api("/v1/dashboard/requests/" + encodeURIComponent(id));
  $("detail").hidden = false;
  $("detail-id").textContent = r.request_id;
  const dl = $("detail-fields");
  dl.replaceChildren();
  const fields = {
    status: r.status, caller: r.caller_principal, source: r.source,
    model: r.model ? `${r.model.requested || ""} -> ${r.model.resolved || "-"} (${r.model.region || "-"})` : "",
    decision: r.classification ? r.classification.decision : "",
    categories: r.classification ? Object.entries(r.classification.categories).map(([k, v]) => `${k}: ${v}`).join(", ") : "",
    usage: r.usage ? `${r.usage.input_tokens} in / ${r.usage.output_tokens} out` : "",
    "cost (USD)": r.estimated_cost_usd, "latency ms": r.latency_ms,
    error: r.error ? `${r.error.code}: ${r.error.message}` : "",
    credential: r.credential
      ? `${r.credential.type || "-"}, version ${r.credential.version || "-"}, ` +
        (r.credential.age_s == null ? "age unknown" : `age ${(r.credential.age_s / 86400).toFixed(1)} d`)
      : "",
  };
  for (const [k, v] of Object.entries(fields)) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v == null ? "" : String(v);
    dl.append(dt, dd);
  }
  drawTimeline(r.timeline || []);
}

function drawTimeline(steps) {
  const svg = $("timeline");
  svg.replaceChildren();
  const height = 20 * steps.length + 10;
  svg.setAttribute("height", height);
  const total = Math.max(1, ...steps.map((s) => s.elapsed_ms || 0));
  steps.forEach((s, i) => {
    const x = 130 + (300 * (s.elapsed_ms || 0)) / total;
    svg.append(
      svgEl("text", { x: 0, y: 14 + 20 * i }, s.step),
      svgEl("line", { x1: 130, x2: x, y1: 10 + 20 * i, y2: 10 + 20 * i, stroke: "#9ab" }),
      svgEl("circle", { cx: x, cy: 10 + 20 * i, r: 4, fill: "#14324a" }),
      svgEl("text", { x: Math.min(x + 6, 420), y: 14 + 20 * i }, `+${s.elapsed_ms} ms`),
    );
  });
}

async function refreshStats() {
  const minutes = Math.min(1440, Number($("f-since").value));
  const s = await api("/v1/dashboard/stats?minutes=" + minutes);
  const b = s.buckets;
  bars($("chart-throughput"), [b.map((x) => x.requests), b.map((x) => x.errors), b.map((x) => x.throttles)], ["#2b6cb0", "#c53030", "#b7791f"]);
  lines($("chart-latency"), [b.map((x) => x.latency_p50_ms), b.map((x) => x.latency_p95_ms)], ["#2b6cb0", "#c53030"], ["p50", "p95"]);
  const models = Object.entries(s.models);
  bars($("chart-tokens"), [models.map(([, m]) => m.input_tokens), models.map(([, m]) => m.output_tokens)], ["#2f855a", "#805ad5"], models.map(([name]) => name));
  const blocked = Object.entries(s.blocked_by_category);
  bars($("chart-blocked"), [blocked.map(([, n]) => n)], ["#8a4b00"], blocked.map(([name]) => name));
  const tbody = document.querySelector("#models-table tbody");
  tbody.replaceChildren();
  for (const [name, m] of models) {
    const tr = document.createElement("tr");
    for (const v of [name, m.requests, m.errors, m.throttles, m.latency_p50_ms, m.latency_p95_ms, m.input_tokens, m.output_tokens]) cell(tr, v);
    tbody.appendChild(tr);
  }
}

async function admin(path, method, body) {
  try {
    const result = await api(path, { method, body });
    $("admin-result").textContent = JSON.stringify(result, null, 2);
  } catch (error) {
    $("admin-result").textContent = String(error.message);
  }
}

function loop(fn, ms, always) {
  const run = async () => {
    if (always || $("f-live").checked) {
      try { await fn(); } catch (error) {
        $("status-line").textContent = "error: " + error.message;
        $("status-line").className = "status error";
      }
    }
    setTimeout(run, ms);
  };
  run();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["f-status", "f-decision", "f-model", "f-caller", "f-since"]) {
    $(id).addEventListener("change", () => refreshRequests().catch(() => {}));
    $(id).addEventListener("input", () => refreshRequests().catch(() => {}));
  }
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  $("redrive").addEventListener("click", () => admin("/v1/admin/dlq/redrive", "POST", "{}"));
  $("policy-put").addEventListener("click", () => admin("/v1/admin/policy", "PUT", $("policy-text").value));
  loop(refreshRequests, REFRESH_MS, false);
  loop(refreshStats, STATS_REFRESH_MS, false);
});
