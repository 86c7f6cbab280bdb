"""The usage and cost report (GET /v1/usage): lineage of a period, grouped by the dimensions asked for."""

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict

from xpi.models.insights import Insights

Dimension = Literal["caller", "project", "cost_centre", "model", "region", "day"]
DIMENSIONS: tuple[Dimension, ...] = ("caller", "project", "cost_centre", "model", "region", "day")


class UsageFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: int = 0
    completed: int = 0
    blocked: int = 0
    errors: int = 0  # FAILED, access refusals included
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    response_cache_hits: int = 0
    usd: float = 0.0  # the requests' estimated cost (lineage), from the routing document and price table
    saved_usd: float = 0.0  # what response-cache hits would have cost


class UsageRow(UsageFigures):
    group: dict[str, str]  # dimension -> value ("-" when lineage has none)


class UsageReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_day: date
    last_day: date
    group_by: list[Dimension]
    rows: list[UsageRow]
    totals: UsageFigures
    # Trends, leaders and anomalies of the same lineage (xpi.domain.insights); JSON only, not in the CSV.
    insights: Insights | None = None
