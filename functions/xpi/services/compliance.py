"""Compliance use cases: check the stack's live configuration (the scheduled checker) and build the
compliance report for a period (the report route). Written against the ports (docs/compliance.md)."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit

from xpi.adapters.ports import (
    AdminActivity,
    CheckRunStore,
    ConfigHistory,
    DayLineage,
    StackConfigurationReader,
)
from xpi.domain.compliance import ReportInputs, build_report
from xpi.domain.config_checks import run_checks
from xpi.domain.errors import Problem, RequestInvalid
from xpi.domain.lineage_verify import Sources, verify
from xpi.models.compliance import CheckRun, ComplianceReport, TamperCheck
from xpi.models.lineage import LineageItem
from xpi.observability import logger, metrics
from xpi.services.sealing import last_closed_day

MAX_PERIOD_DAYS: Final = 92
EARLIEST_DAY: Final = date(1970, 1, 1)


def check_configuration(reader: StackConfigurationReader, store: CheckRunStore, now: datetime) -> CheckRun:
    """Read the live configuration, run every check, keep the run where the report reads it."""
    run = run_checks(reader.read(), now)
    store.put(run)
    failed = [c.check for c in run.checks if c.status == "FAIL"]
    metrics.add_metric(name="CompliancePassRate", unit=MetricUnit.Percent, value=run.pass_rate)
    metrics.add_metric(name="ComplianceChecksFailed", unit=MetricUnit.Count, value=len(failed))
    logger.info("configuration checked", extra={"pass_rate": run.pass_rate, "failed_checks": failed})
    return run


@dataclass(frozen=True)
class ReportPorts:
    lineage: DayLineage
    checks: CheckRunStore
    history: ConfigHistory
    admin: AdminActivity
    tamper: Sources | None  # None: the stack has no digests to check against
    settle: timedelta  # a day is sealed only once it ended longer ago than this
    settings: Mapping[str, Any]


def period(first: str | None, last: str | None, today: date) -> tuple[date, date]:
    """The report's days: `from`..`to` (YYYY-MM-DD, inclusive), by default the last 7 days."""
    try:
        end = date.fromisoformat(last) if last else today
        start = date.fromisoformat(first) if first else end - timedelta(days=6)
    except (ValueError, OverflowError):  # not a day, or a default start before year 1
        raise RequestInvalid(
            "from and to must be days (YYYY-MM-DD)", problems=(Problem("from", "date_parsing"),)
        ) from None
    # Lineage and logs begin at the epoch (log timestamps are milliseconds since it) and end today.
    if start < EARLIEST_DAY:
        raise RequestInvalid(
            f"from must not be before {EARLIEST_DAY}", problems=(Problem("from", "out_of_range"),)
        )
    if end > today:
        raise RequestInvalid("to must not be after today", problems=(Problem("to", "out_of_range"),))
    if start > end:
        raise RequestInvalid("from must not be after to", problems=(Problem("from", "out_of_range"),))
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise RequestInvalid(
            f"a report covers at most {MAX_PERIOD_DAYS} days", problems=(Problem("to", "out_of_range"),)
        )
    return start, end


def _lineage_item(stored: Mapping[str, Any]) -> LineageItem:
    return LineageItem.model_validate({k: v for k, v in stored.items() if k in LineageItem.model_fields})


def _tamper(sources: Sources | None, first: date, last: date, sealed_until: date) -> TamperCheck:
    if sources is None:
        return TamperCheck(performed=False, detail="the stack has no lineage digests")
    end = min(last, sealed_until)
    if end < first:
        return TamperCheck(
            performed=False, detail=f"no day of the period is sealed yet (sealed until {sealed_until})"
        )
    records, problems = verify(sources, first, end)
    detail = f"{first}..{end} checked" + (
        f"; {end + timedelta(days=1)}..{last} not sealed yet" if end < last else ""
    )
    return TamperCheck(
        performed=True,
        records=records,
        problems=[
            {"kind": p.kind, "day": p.day, "request_id": p.request_id, "detail": p.detail} for p in problems
        ],
        intact=not problems,
        detail=detail,
    )


def compliance_report(ports: ReportPorts, first: date, last: date, now: datetime) -> ComplianceReport:
    records: list[Mapping[str, Any]] = []
    day = first
    while day <= last:
        records.extend(ports.lineage.day_records(day))
        day += timedelta(days=1)
    since = datetime.combine(first, time.min, UTC)
    until = datetime.combine(last + timedelta(days=1), time.min, UTC)
    inputs = ReportInputs(
        first=first,
        last=last,
        lineage=[_lineage_item(r) for r in records],
        checks=ports.checks.latest(),
        config_changes=ports.history.changes(since, until),
        admin_actions=ports.admin.actions(since, until),
        tamper=_tamper(ports.tamper, first, last, last_closed_day(now, ports.settle)),
        settings=ports.settings,
    )
    report = build_report(inputs, now)
    metrics.add_metric(name="ComplianceReports", unit=MetricUnit.Count, value=1)
    return report
