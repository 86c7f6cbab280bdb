"""`xpi compliance report`'s summary: the pass rate, every check's result, each failed evaluation."""

from datetime import UTC, date, datetime

import pytest
from xpi.domain.compliance import ReportInputs, build_report
from xpi.domain.compliance_controls import CHECKS
from xpi.domain.config_checks import run_checks
from xpi.models.compliance import TamperCheck
from xpi_tools.compliance_cli import main, summary

from tests.helpers.fakes_compliance import compliant_configuration

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def _report(**changes: object) -> dict[str, object]:
    configuration = compliant_configuration()
    for name, value in changes.items():
        setattr(configuration.tables[0], name, value)
    inputs = ReportInputs(
        first=date(2026, 12, 5),
        last=date(2026, 12, 5),
        lineage=[],
        checks=run_checks(configuration, NOW),
        config_changes=[],
        admin_actions=[],
        tamper=TamperCheck(performed=False, detail="no day of the period is sealed yet"),
    )
    return build_report(inputs, NOW).model_dump(mode="json", by_alias=True)


def test_the_summary_names_the_pass_rate_and_every_check() -> None:
    lines = summary(_report())
    assert lines[0].startswith(
        "Compliance report 2026-12-05 to 2026-12-05: configuration checks pass rate 100.00 %"
    )
    for check in CHECKS:
        assert any(f" {check} " in line for line in lines), check
    assert lines[-1].startswith("  tamper check: not performed")


def test_the_summary_names_each_failed_evaluation() -> None:
    lines = summary(_report(pitr=False))
    assert any(line.startswith("  FAIL  dynamodb-pitr-enabled") for line in lines)
    assert any("FAIL dynamodb-pitr-enabled lineage: PITR off" in line for line in lines)


def test_without_a_stack_or_a_local_state_file_it_says_what_to_do() -> None:
    with pytest.raises(SystemExit, match="xpi local up"):
        main(["report", "--state-file", "/nonexistent/stack.json"])
