"""The compliance report as CSV (one row per figure and per check evaluation) and as a printable HTML
page (self-contained: inline CSS, no script, nothing fetched). Pure."""

import csv
import io
import json
from collections.abc import Iterator, Mapping
from html import escape
from typing import Any, Final

from xpi.models.compliance import ComplianceReport

CSV_HEADER: Final = ("section", "item", "key", "value", "controls")


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), inner)
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for index, inner in enumerate(value):
            yield from _flatten(f"{prefix}[{index}]", inner)
    elif isinstance(value, list):
        yield prefix, "; ".join(str(v) for v in value)
    elif isinstance(value, Mapping):
        yield prefix, ""
    else:
        yield prefix, "" if value is None else str(value)


def to_csv(report: ComplianceReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    writer.writerow(("period", "report", "from", report.period_from, ""))
    writer.writerow(("period", "report", "to", report.period_to, ""))
    writer.writerow(("period", "report", "generated_at", report.generated_at.isoformat(), ""))
    writer.writerow(
        ("checks", "pass_rate", "pass_rate", "" if report.pass_rate is None else report.pass_rate, "")
    )
    for item in report.items:
        for key, value in _flatten("", item.figures):
            writer.writerow(("item", item.item, key, value, " ".join(item.controls)))
    for check in report.checks:
        writer.writerow(
            ("check", check.check, check.config_rule or "", check.status, " ".join(check.controls))
        )
    for evaluation in report.evaluations:
        writer.writerow(
            (
                "evaluation",
                evaluation.check,
                evaluation.resource,
                f"{evaluation.status}: {evaluation.detail}",
                "",
            )
        )
    return out.getvalue()


_STYLE: Final = """
body{font:13px/1.4 system-ui,sans-serif;margin:2em;color:#111}
h1{font-size:20px}h2{font-size:15px;margin-top:1.6em;border-bottom:1px solid #999}
table{border-collapse:collapse;width:100%;margin:.4em 0}
td,th{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}
.PASS{color:#064}.FAIL{color:#a00;font-weight:bold}.controls{color:#444;font-size:12px}
@media print{body{margin:0}h2{page-break-after:avoid}table{page-break-inside:auto}}
"""


def _cell(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return f"<code>{escape(json.dumps(value, sort_keys=True))}</code>"
    return escape("" if value is None else str(value))


def to_html(report: ComplianceReport) -> str:
    rate = "not checked yet" if report.pass_rate is None else f"{report.pass_rate:.2f} %"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>xpi compliance report {escape(report.period_from)} to {escape(report.period_to)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>xpi compliance report: {escape(report.period_from)} to {escape(report.period_to)}</h1>",
        f"<p>Generated {escape(report.generated_at.isoformat())}. "
        f"Configuration checks pass rate: <strong id='pass-rate'>{escape(rate)}</strong>"
        + (f" (checked {escape(report.checked_at.isoformat())})" if report.checked_at else "")
        + "</p>",
        "<h2>Configuration checks</h2><table><tr><th>check</th><th>AWS Config rule</th><th>result</th>"
        "<th>resources failed / evaluated</th><th>NIST SP 800-53</th></tr>",
    ]
    for check in report.checks:
        parts.append(
            f"<tr><td>{escape(check.title)} <span class='controls'>({escape(check.check)})</span></td>"
            f"<td>{escape(check.config_rule or '-')}</td><td class='{check.status}'>{check.status}</td>"
            f"<td>{check.failed} / {check.evaluations}</td><td>{escape(' '.join(check.controls))}</td></tr>"
        )
    parts.append(
        "</table><h2>Evaluations</h2><table><tr><th>check</th><th>resource</th><th>result</th><th>detail</th></tr>"
    )
    for evaluation in report.evaluations:
        parts.append(
            f"<tr><td>{escape(evaluation.check)}</td><td>{escape(evaluation.resource)}</td>"
            f"<td class='{evaluation.status}'>{evaluation.status}</td>"
            f"<td>{escape(evaluation.detail)}</td></tr>"
        )
    parts.append("</table>")
    for item in report.items:
        parts.append(
            f"<h2 id='item-{escape(item.item)}'>{escape(item.title)}</h2>"
            f"<p class='controls'>NIST SP 800-53: {escape(', '.join(item.controls))}. "
            f"{escape(item.justification)}</p>"
            "<table>"
        )
        for key, value in item.figures.items():
            parts.append(f"<tr><th>{escape(key)}</th><td>{_cell(value)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
