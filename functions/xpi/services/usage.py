"""GET /v1/usage: the usage and cost report of a period (the compliance report's days and limits), from
the period's lineage (the by-day index), grouped as asked, with the period's trends and anomalies."""

from datetime import date

from xpi.adapters.ports import DayLineage
from xpi.domain.errors import Problem, RequestInvalid
from xpi.domain.insights import insights
from xpi.domain.usage import aggregate
from xpi.models.lineage import LineageItem
from xpi.models.usage import DIMENSIONS, Dimension, UsageReport

DEFAULT_GROUP_BY: tuple[Dimension, ...] = ("day", "caller", "model")


def group_by(value: str | None) -> list[Dimension]:
    """The dimensions of `group_by` (comma-separated, each once), by default day, caller and model."""
    if not value:
        return list(DEFAULT_GROUP_BY)
    asked = [part.strip() for part in value.split(",")]
    chosen: list[Dimension] = []
    for part in asked:
        dimension = next((d for d in DIMENSIONS if d == part), None)
        if dimension is None or dimension in chosen:
            raise RequestInvalid(
                f"group_by takes distinct dimensions of {', '.join(DIMENSIONS)}",
                problems=(Problem("group_by", "enum"),),
            )
        chosen.append(dimension)
    return chosen


def usage_report(lineage: DayLineage, first: date, last: date, dimensions: list[Dimension]) -> UsageReport:
    items: list[LineageItem] = []
    day = first
    while day <= last:
        items.extend(
            LineageItem.model_validate({k: v for k, v in stored.items() if k in LineageItem.model_fields})
            for stored in lineage.day_records(day)
        )
        day = date.fromordinal(day.toordinal() + 1)
    rows, totals = aggregate(items, dimensions)
    return UsageReport(
        first_day=first,
        last_day=last,
        group_by=dimensions,
        rows=rows,
        totals=totals,
        insights=insights(items),
    )
