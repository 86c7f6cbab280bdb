"""Usage and cost analytics from lineage: tokens, requests, blocks, errors and dollars grouped by any of
caller, project, cost centre, model, region and day. Dollars are each request's estimated cost as
lineage recorded it (the routing document's prices, prompt caching's from the price table), so the
report and its CSV add up to the lineage they came from."""

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from xpi.models.lineage import LineageItem
from xpi.models.usage import UsageFigures, UsageReport, UsageRow

NONE = "-"
_DIGITS = 8


def _value(item: LineageItem, dimension: str) -> str:
    values: dict[str, str | None] = {
        "caller": item.caller_principal,
        "project": item.project,
        "cost_centre": item.cost_centre,
        "model": item.model_id or item.model_requested,
        "region": item.commercial_region,
        "day": item.day,
    }
    return values[dimension] or NONE


def _add(figures: dict[str, Any], item: LineageItem) -> None:
    figures["requests"] += 1
    figures["completed"] += item.status == "COMPLETED"
    figures["blocked"] += item.status == "BLOCKED"
    figures["errors"] += item.status == "FAILED"
    if item.usage is not None:
        figures["input_tokens"] += item.usage.input_tokens
        figures["output_tokens"] += item.usage.output_tokens
        figures["cache_read_input_tokens"] += item.usage.cache_read_input_tokens or 0
        figures["cache_write_input_tokens"] += item.usage.cache_write_input_tokens or 0
    figures["usd"] += Decimal(item.estimated_cost_usd or "0")
    if item.cache is not None and item.cache.status == "hit":
        figures["response_cache_hits"] += 1
        figures["saved_usd"] += Decimal(item.cache.saved_usd or "0")


def _empty() -> dict[str, Any]:
    return {name: Decimal(0) if name in ("usd", "saved_usd") else 0 for name in UsageFigures.model_fields}


def _figures(raw: dict[str, Any]) -> dict[str, Any]:
    # Summed as decimals (lineage keeps each cost as its decimal string), rounded once.
    return {k: float(round(v, _DIGITS)) if isinstance(v, Decimal) else v for k, v in raw.items()}


def aggregate(items: Iterable[LineageItem], group_by: Sequence[str]) -> tuple[list[UsageRow], UsageFigures]:
    """One row per combination of the dimensions' values (sorted), and the totals. In-flight requests
    (ACCEPTED) are left out: they have no outcome yet."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    totals = _empty()
    for item in items:
        if item.status == "ACCEPTED":
            continue
        key = tuple(_value(item, d) for d in group_by)
        _add(groups.setdefault(key, _empty()), item)
        _add(totals, item)
    rows = [
        UsageRow(group=dict(zip(group_by, key, strict=True)), **_figures(raw))
        for key, raw in sorted(groups.items())
    ]
    return rows, UsageFigures(**_figures(totals))


def to_csv(report: UsageReport) -> str:
    """The report's rows as CSV: the dimensions, then every figure; a last row of totals."""
    names = list(UsageFigures.model_fields)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*report.group_by, *names])
    for row in report.rows:
        writer.writerow([*(row.group[d] for d in report.group_by), *(getattr(row, n) for n in names)])
    totals = report.totals
    writer.writerow(["total", *([""] * (len(report.group_by) - 1)), *(getattr(totals, n) for n in names)])
    return out.getvalue()
