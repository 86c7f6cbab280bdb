"""The compliance report (xpi.domain.compliance, xpi.services.compliance): its figures from given
lineage, its NIST SP 800-53 mapping covering every item and check, and its CSV and HTML exports."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from xpi.domain.compliance import ReportInputs, build_report
from xpi.domain.compliance_controls import CHECKS, ITEMS
from xpi.domain.compliance_export import to_csv, to_html
from xpi.domain.config_checks import run_checks
from xpi.domain.errors import RequestInvalid
from xpi.models.compliance import AdminAction, ConfigChange, TamperCheck
from xpi.models.lineage import LineageItem
from xpi.services.compliance import ReportPorts, compliance_report, period

from tests.helpers.fakes_compliance import (
    FakeAdminActivity,
    FakeCheckRuns,
    FakeConfigHistory,
    FakeDayLineage,
    compliant_configuration,
)

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
DAY = "2026-12-04"
NIST_CONTROL = r"^[A-Z]{2}-\d+(\(\d+\))?$"


def record(request_id: str, status: str = "COMPLETED", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "request_id": request_id,
        "status": status,
        "created_at": f"{DAY}T10:00:{len(request_id):02d}.000Z",
        "day": DAY,
        "expires_at": 1,
        "caller_principal": "arn:aws-us-gov:iam::123456789012:user/alice",
        "source": "sqs",
        "model_requested": "claude",
    }
    return {**base, **fields}


def classified(decision: str, categories: dict[str, int]) -> dict[str, Any]:
    return {
        "decision": decision,
        "categories": categories,
        "findings": sum(categories.values()),
        "classifier": "x",
    }


LINEAGE = [
    record(
        "a1",
        classification=classified("allow", {}),
        model_id="anthropic.claude-v1",
        commercial_region="us-east-1",
        credential_version="v1",
        credential_type="iam-access-key",
        credential_age_s=100,
        policy_revision=0,
        policy_sha256="abcdef0123456789",
        routing_revision=2,
        routing_sha256="0123456789abcdef",
    ),
    record(
        "r2",
        classification=classified("redact", {"pii.ssn": 2, "pii.email": 1}),
        model_id="anthropic.claude-v1",
        commercial_region="us-east-1",
        credential_version="v2",
        credential_type="iam-access-key",
        credential_age_s=5,
        policy_revision=1,
        policy_sha256="fedcba",
        routing_revision=2,
        routing_sha256="0123456789abcdef",
        config_fallback=True,
    ),
    record("b3", "BLOCKED", classification=classified("block", {"classified.banner": 1, "cui.banner": 1})),
    record("b4", "BLOCKED", classification=classified("block", {"cui.banner": 2}), caller_principal="bob"),
    record("f5", "FAILED", error={"code": "ModelNotAllowedForCaller", "message": "m"}),
    record("f6", "FAILED", error={"code": "BudgetExceeded", "message": "m"}, chain_seq=1, chain_hash="h"),
    record("f7", "FAILED", error={"code": "ModelNotAllowedForCaller", "message": "m"}, source="api"),
    record("x8", day="2026-12-01", created_at="2026-12-01T00:00:00.000Z"),  # outside the period
]


def report_of(records: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    items = [
        LineageItem.model_validate({k: v for k, v in r.items() if k in LineageItem.model_fields})
        for r in records
    ]
    inputs = ReportInputs(
        first=date(2026, 12, 3),
        last=date(2026, 12, 4),
        lineage=items,
        checks=overrides.get("checks"),
        config_changes=overrides.get("changes", []),
        admin_actions=overrides.get("admin", []),
        tamper=overrides.get("tamper", TamperCheck(performed=False, detail="not sealed")),
        settings={"lineage_retention_days": 365, "kms_key_arn": "arn:key"},
    )
    report = build_report(inputs, NOW)
    return {item.item: item.figures for item in report.items} | {"_report": report}


def test_figures_from_the_periods_lineage() -> None:
    figures = report_of(LINEAGE)
    decisions = figures["requests_by_decision"]
    assert decisions["total"] == 7
    assert decisions["by_status"] == {"BLOCKED": 2, "COMPLETED": 2, "FAILED": 3}
    assert decisions["by_decision"] == {"allow": 1, "block": 2, "none": 3, "redact": 1}
    assert figures["requests_by_category"]["findings"] == {
        "classified.banner": 1,
        "cui.banner": 3,
        "pii.email": 1,
        "pii.ssn": 2,
    }
    assert figures["requests_by_category"]["requests"]["cui.banner"] == 2
    assert figures["redactions"] == {"requests": 1, "findings": 3, "by_status": {"COMPLETED": 1}}
    assert figures["blocks"] == {"requests": 2, "by_category": {"classified.banner": 1, "cui.banner": 3}}
    assert figures["security_alerts"] == {"requests": 1, "request_ids": ["b3"]}
    assert figures["refusals"] == {
        "failed": 3,
        "by_reason": {"BudgetExceeded": 1, "ModelNotAllowedForCaller": 2},
    }
    assert figures["models_and_regions"]["models"] == {"anthropic.claude-v1": 2}
    assert figures["models_and_regions"]["regions"] == {"us-east-1": 2}
    assert figures["callers"]["count"] == 2
    assert figures["callers"]["requests"]["bob"] == 1
    assert figures["configuration_versions"] == {
        "policy": {"r0:abcdef012345": 1, "r1:fedcba": 1},
        "routing": {"r2:0123456789ab": 2},
        "default_applied": 1,
    }
    credentials = figures["credentials"]
    assert credentials["rotations"] == 1
    assert credentials["max_age_s"] == 100
    assert set(credentials["versions"]) == {"v1", "v2"}
    assert credentials["by_type"] == {"iam-access-key": 2}


def test_admin_actions_allowed_and_refused_and_config_changes() -> None:
    at = datetime(2026, 12, 4, 12, tzinfo=UTC)
    admin = [
        AdminAction(at=at, caller="admin", method="PUT", path="/v1/admin/policy", status=200),
        AdminAction(at=at, caller="op", method="PUT", path="/v1/admin/policy", status=403),
        AdminAction(at=at, caller="op", method="POST", path="/v1/admin/dlq/redrive", status=403),
    ]
    changes = [ConfigChange(document="policy", version=3, modified_at=at, modified_by="arn:role/admin")]
    figures = report_of(LINEAGE, admin=admin, changes=changes)
    assert figures["admin_actions"]["allowed"] == 1
    assert figures["admin_actions"]["refused"] == 2
    assert figures["configuration_changes"]["count"] == 1
    assert figures["configuration_changes"]["changes"][0]["version"] == 3


def test_the_check_run_and_tamper_result_are_in_the_report() -> None:
    run = run_checks(compliant_configuration(), NOW)
    tamper = TamperCheck(performed=True, records=5, intact=True, detail="checked")
    figures = report_of(LINEAGE, checks=run, tamper=tamper)
    report = figures["_report"]
    assert report.pass_rate == 100.0
    assert {c.check for c in report.checks} == set(CHECKS)
    assert figures["configuration_checks"]["pass_rate"] == 100.0
    assert figures["tamper_check"]["intact"] is True
    assert figures["encryption"]["checked"]["failed"] == 0
    assert figures["retention"]["configured"] == {"lineage_retention_days": 365}


def test_the_mapping_covers_every_item_the_report_makes_and_nothing_else() -> None:
    report = report_of(LINEAGE)["_report"]
    assert [i.item for i in report.items] == list(ITEMS)
    for name, item in ITEMS.items():
        assert item.controls and item.justification, name
        assert all(__import__("re").match(NIST_CONTROL, c) for c in item.controls), (name, item.controls)
    for name, check in CHECKS.items():
        assert check.controls and check.title, name
    everything = {c for i in ITEMS.values() for c in i.controls} | {
        c for k in CHECKS.values() for c in k.controls
    }
    wanted = {"AC-3", "AC-4", "AC-6", "AU-2", "AU-3", "AU-6", "AU-9", "AU-10", "AU-11", "AU-12", "IA-2(1)"}
    wanted |= {"SC-7", "SC-8", "SC-12", "SC-13", "SC-28", "SI-4"}
    assert wanted <= everything


def test_csv_and_html_carry_the_figures() -> None:
    run = run_checks(compliant_configuration(), NOW)
    report = report_of(LINEAGE, checks=run)["_report"]
    rows = list(csv.reader(io.StringIO(to_csv(report))))
    assert rows[0] == ["section", "item", "key", "value", "controls"]
    assert ["item", "blocks", "requests", "2", "AC-4 SC-7"] in rows
    assert ["checks", "pass_rate", "pass_rate", "100.0", ""] in rows
    assert sum(r[0] == "check" for r in rows) == len(CHECKS)
    page = to_html(report)
    assert "<strong id='pass-rate'>100.00 %</strong>" in page
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")


def test_html_escapes_what_lineage_holds() -> None:
    report = report_of([record("z", caller_principal="<script>alert(1)</script>")])["_report"]
    assert "<script>alert" not in to_html(report)


def test_the_service_reads_each_day_and_skips_unsealed_days_for_the_tamper_check() -> None:
    # GIVEN lineage of two days and a tamper source that records which days it is asked
    asked: list[date] = []

    from xpi.domain.lineage_verify import Sources

    def records(day: date) -> list[dict[str, Any]]:
        asked.append(day)
        return []

    sources = Sources(lambda day: None, records, lambda key: b"", "arn:key")
    store = FakeCheckRuns()
    ports = ReportPorts(
        lineage=FakeDayLineage(LINEAGE),
        checks=store,
        history=FakeConfigHistory([]),
        admin=FakeAdminActivity([]),
        tamper=sources,
        settle=timedelta(hours=2),
        settings={},
    )
    # WHEN the report covers today only (not closed: nothing to verify)
    report = compliance_report(ports, date(2026, 12, 5), date(2026, 12, 5), NOW)
    figures = {i.item: i.figures for i in report.items}
    assert figures["tamper_check"]["performed"] is False
    assert asked == []
    # WHEN it covers the 1st to today
    report = compliance_report(ports, date(2026, 12, 1), date(2026, 12, 5), NOW)
    # THEN the figures come from every day, and only closed days (to the 4th: 06:00 less the settle
    # time is still the 5th) are verified
    figures = {i.item: i.figures for i in report.items}
    assert figures["requests_by_decision"]["total"] == 8
    assert asked == [date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3), date(2026, 12, 4)]
    assert figures["tamper_check"]["performed"] is True
    assert "2026-12-05..2026-12-05 not sealed yet" in figures["tamper_check"]["detail"]


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("2026-12-05", "2026-12-01"),
        ("yesterday", None),
        ("2026-01-01", "2026-12-01"),
        # days before the epoch (log timestamps) or past today, and a default start before year 1
        (None, "0495-01-16"),
        ("1969-12-31", "1970-01-02"),
        (None, "0001-01-03"),
        ("2026-12-05", "2026-12-06"),
        ("9999-12-31", "9999-12-31"),
    ],
)
def test_a_bad_period_is_refused(first: str, last: str | None) -> None:
    with pytest.raises(RequestInvalid):
        period(first, last, date(2026, 12, 5))


def test_the_default_period_is_the_last_seven_days() -> None:
    assert period(None, None, date(2026, 12, 5)) == (date(2026, 11, 29), date(2026, 12, 5))
