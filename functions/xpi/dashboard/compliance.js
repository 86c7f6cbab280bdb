// xpi dashboard, compliance view: GET /v1/compliance/report (through the signing proxy, or signed in the
// page behind the API's sign-in), rendered as tables; CSV and JSON saved through export.js. Every figure carries data-figure="<item>.<key>..." (what the browser test reads).
"use strict";

const REPORT = "/v1/compliance/report";
const $ = (id) => document.getElementById(id);

function isoDay(date) { return date.toISOString().slice(0, 10); }

function query(format) {
  const params = new URLSearchParams({ from: $("c-from").value, to: $("c-to").value });
  if (format) params.set("format", format);
  return `${REPORT}?${params.toString()}`;
}

function cells(row, values) {
  for (const value of values) {
    const td = document.createElement("td");
    td.textContent = value == null ? "" : String(value);
    row.appendChild(td);
  }
  return row;
}

// A figure's nested values as rows: one per leaf, named by its path.
function flatten(prefix, value, rows) {
  if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length) {
    for (const [key, inner] of Object.entries(value)) flatten(`${prefix}.${key}`, inner, rows);
  } else if (Array.isArray(value) && value.length && value.every((v) => v && typeof v === "object")) {
    value.forEach((inner, index) => flatten(`${prefix}[${index}]`, inner, rows));
  } else {
    const text = Array.isArray(value) ? value.join("; ") : (value && typeof value === "object") ? "" : value;
    rows.push([prefix, text]);
  }
  return rows;
}

function renderChecks(report) {
  $("pass-rate").textContent = report.pass_rate == null ? "not checked yet" : `${report.pass_rate.toFixed(2)} %`;
  $("pass-rate").dataset.figure = "pass_rate";
  $("pass-rate").dataset.value = report.pass_rate == null ? "" : String(report.pass_rate);
  $("checked-at").textContent = report.checked_at ? `checked ${report.checked_at}` : "";
  const tbody = document.querySelector("#checks tbody");
  tbody.replaceChildren();
  for (const check of report.checks) {
    const tr = cells(document.createElement("tr"), [
      `${check.title} (${check.check})`, check.config_rule || "-", check.status,
      `${check.failed} / ${check.evaluations}`, check.controls.join(" "),
    ]);
    tr.dataset.check = check.check;
    tr.dataset.status = check.status;
    tr.children[2].className = `r-${check.status}`;
    tbody.appendChild(tr);
  }
  const evaluations = document.querySelector("#evaluations tbody");
  evaluations.replaceChildren();
  for (const e of report.evaluations) {
    const tr = cells(document.createElement("tr"), [e.check, e.resource, e.status, e.detail]);
    tr.children[2].className = `r-${e.status}`;
    evaluations.appendChild(tr);
  }
}

function renderItems(report) {
  const container = $("items");
  container.replaceChildren();
  for (const item of report.items) {
    const section = document.createElement("section");
    section.className = "item";
    section.dataset.item = item.item;
    const h2 = document.createElement("h2");
    h2.textContent = item.title;
    const controls = document.createElement("p");
    controls.className = "controls";
    controls.textContent = `NIST SP 800-53: ${item.controls.join(", ")}. ${item.justification}`;
    const table = document.createElement("table");
    const tbody = document.createElement("tbody");
    for (const [path, value] of flatten(item.item, item.figures, [])) {
      const tr = cells(document.createElement("tr"), [path.slice(item.item.length + 1), value]);
      tr.children[1].dataset.figure = path;
      tbody.appendChild(tr);
    }
    table.appendChild(tbody);
    section.append(h2, controls, table);
    container.appendChild(section);
  }
}

async function load() {
  const status = $("status-line");
  status.textContent = "loading...";
  status.classList.remove("error");
  try {
    const response = await fetch(query("json"), { headers: { "X-Xpi-Dashboard": "1" } });
    const body = await response.json();
    if (!response.ok) throw new Error(`${response.status} ${(body.error && body.error.code) || body.message || body.Message}`);
    renderChecks(body);
    renderItems(body);
    $("c-generated").textContent = `${body.from} to ${body.to}, generated ${body.generated_at}`;
    status.textContent = "loaded";
    document.body.dataset.loadedAt = body.generated_at;
  } catch (error) {
    status.textContent = `error: ${error.message}`;
    status.classList.add("error");
  }
}

const today = new Date();
$("c-to").value = isoDay(today);
$("c-from").value = isoDay(new Date(today.getTime() - 6 * 86400000));
$("c-load").addEventListener("click", load);
$("c-print").addEventListener("click", () => window.print());
for (const format of ["csv", "json"]) {
  $(`c-${format}`).addEventListener("click", () => saveExport(query(format), `xpi-compliance-${$("c-from").value}-${$("c-to").value}.${format}`)
    .catch((error) => { $("status-line").textContent = `error: ${error.message}`; $("status-line").classList.add("error"); }));
}
load();
