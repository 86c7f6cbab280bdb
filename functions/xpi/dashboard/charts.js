// xpi dashboard, the charts every view draws (plain SVG, no library): bars (one group of bars per point,
// one bar per series; each rect carries data-value) and lines (one polyline per series).
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attributes, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, String(v));
  if (text != null) el.textContent = text;
  return el;
}

function bars(svg, series, colors, labels) {
  svg.replaceChildren();
  const width = Number(svg.getAttribute("width")), height = Number(svg.getAttribute("height")) - 20;
  const n = series[0] ? series[0].length : 0;
  const max = Math.max(0, ...series.flat().map((v) => v || 0)) || 1; // dollars are fractions
  const slot = n ? (width - 30) / n : 0;
  series.forEach((values, k) => values.forEach((v, i) => {
    const h = (height * (v || 0)) / max;
    const w = Math.min(40, Math.max(1, slot / series.length - 1));
    svg.append(svgEl("rect", { x: 30 + i * slot + k * w, y: height - h, width: w, height: h, fill: colors[k], "data-value": v || 0 }));
  }));
  svg.append(svgEl("text", { x: 0, y: 10 }, String(max)), svgEl("text", { x: 0, y: height }, "0"));
  (labels || []).forEach((label, i) => svg.append(svgEl("text", { x: 30 + i * slot, y: height + 14 }, label.slice(0, Math.max(3, Math.floor(slot / 6))))));
}

function lines(svg, series, colors, legend) {
  svg.replaceChildren();
  const width = Number(svg.getAttribute("width")), height = Number(svg.getAttribute("height")) - 20;
  const n = series[0] ? series[0].length : 0;
  const max = Math.max(0, ...series.flat().map((v) => v || 0)) || 1; // dollars are fractions
  series.forEach((values, k) => {
    const points = values.map((v, i) => v == null ? null : `${30 + (i * (width - 30)) / Math.max(1, n - 1)},${height - (height * v) / max}`).filter(Boolean);
    if (points.length) svg.append(svgEl("polyline", { points: points.join(" "), fill: "none", stroke: colors[k], "stroke-width": 2 }));
    for (const point of points) {
      const [cx, cy] = point.split(",");
      svg.append(svgEl("circle", { cx, cy, r: 2.5, fill: colors[k] }));
    }
  });
  svg.append(svgEl("text", { x: 0, y: 10 }, String(max)), svgEl("text", { x: 0, y: height }, "0"));
  (legend || []).forEach((name, k) => svg.append(svgEl("text", { x: 40 + 40 * k, y: height + 14, fill: colors[k] }, name)));
}

