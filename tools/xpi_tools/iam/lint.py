"""`xpi iam lint`: every IAM policy of the template, checked with parliament against AWS's service
authorization reference (actions, the resource types each action takes, condition keys).

Linted: each role's inline policies, the template's managed policies, the AWS managed policies SAM
attaches (each once, under "AWS managed"), and resource policies (queue, bucket, KMS key, secret, API).
Not linted: role trust policies (no Resource element by design). Findings at MEDIUM or above fail
unless security/iam-lint-accepted.yaml accepts them with a reason; an accepted entry that matches
no finding fails too, so the list cannot outlive what it excuses.

parliament runs in its own venv (see parliament_runner.py) from its bundled database, offline.
"""

import argparse
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from xpi_tools.iam.template_policies import NamedPolicy, TemplatePolicies

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
ACCEPTED_FILE = Path("security/iam-lint-accepted.yaml")  # beside the template
PARLIAMENT_VENV = REPO_ROOT / ".xpi/tools/parliament"
RUNNER = Path(__file__).with_name("parliament_runner.py")
SEVERITIES = ("MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")
FAILING_SEVERITY = "MEDIUM"
# parliament rates an unknown action LOW; here it fails, because a misspelt action grants nothing
# and leaves the permission the code needs missing behind a policy that reads as if it were there.
SEVERITY_OVERRIDES = {"UNKNOWN_ACTION": "MEDIUM", "UNKNOWN_PREFIX": "MEDIUM"}
PRIVILEGE_ESCALATION = re.compile(r" on (?P<resource>\S+) due to .* but does allow (?P<granted>\S+)$")
STATEMENT_FIRST_LINE = 2  # policies are written one statement per line, after one header line


@dataclass(frozen=True)
class Finding:
    principal: str
    policy: str
    severity: str
    issue: str
    action: str
    resource: str
    detail: str
    accepted_reason: str = ""

    @property
    def fails(self) -> bool:
        return not self.accepted_reason and at_least(self.severity, FAILING_SEVERITY)


@dataclass(frozen=True)
class AcceptedFinding:
    """A finding checked by a person and found not to be a defect, with why."""

    principal: str
    issue: str
    action: str
    resource: str
    reason: str

    def matches(self, finding: Finding) -> bool:
        return (self.principal, self.issue, self.action, self.resource) == (
            finding.principal,
            finding.issue,
            finding.action,
            finding.resource,
        )


@dataclass(frozen=True)
class LintReport:
    parliament_version: str
    policies: tuple[NamedPolicy, ...]
    findings: tuple[Finding, ...]
    stale: tuple[AcceptedFinding, ...]  # accepted entries that match no finding

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.findings if finding.fails)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stale


def at_least(severity: str, threshold: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


# ---------------------------------------------------------------------- accepted findings
def load_accepted(path: Path) -> list[AcceptedFinding]:
    if not path.exists():
        return []
    content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = content.get("accepted") or []
    accepted = []
    for number, entry in enumerate(entries, start=1):
        missing = {"principal", "issue", "reason"} - set(entry)
        if missing:
            raise ValueError(f"{path}: entry {number} lacks {', '.join(sorted(missing))}")
        reason = str(entry["reason"]).strip()
        if not reason or "\n" in reason:
            raise ValueError(f"{path}: entry {number} needs a one-line reason")
        accepted.append(
            AcceptedFinding(
                principal=str(entry["principal"]),
                issue=str(entry["issue"]),
                action=str(entry.get("action", "")),
                resource=str(entry.get("resource", "")),
                reason=reason,
            )
        )
    return accepted


def apply_accepted(
    findings: Iterable[Finding], accepted: Sequence[AcceptedFinding]
) -> tuple[list[Finding], list[AcceptedFinding]]:
    """The findings with their accepted reasons filled in, and the entries that matched nothing."""
    used: set[int] = set()
    result = []
    for finding in findings:
        index = next((i for i, entry in enumerate(accepted) if entry.matches(finding)), None)
        if index is not None:
            used.add(index)
        result.append(finding if index is None else replace(finding, accepted_reason=accepted[index].reason))
    return result, [entry for index, entry in enumerate(accepted) if index not in used]


# ---------------------------------------------------------------------- parliament
def parliament_python() -> Path:
    configured = os.environ.get("XPI_PARLIAMENT_PYTHON")
    python = Path(configured) if configured else PARLIAMENT_VENV / "bin" / "python"
    if not python.exists():
        target = PARLIAMENT_VENV.relative_to(REPO_ROOT) / ".installed"
        raise FileNotFoundError(f"parliament's venv is missing ({python}): run `make {target}`")
    return python


def run_parliament(policy_texts: Sequence[str]) -> tuple[str, list[list[dict[str, Any]]]]:
    """(parliament's version, its findings for each policy text)."""
    completed = subprocess.run(
        [str(parliament_python()), "-I", str(RUNNER)],
        input=json.dumps(list(policy_texts)),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"parliament failed:\n{completed.stderr[-3000:]}")
    output = json.loads(completed.stdout)
    return str(output["version"]), list(output["findings"])


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return list(statements) if isinstance(statements, list) else [statements]


def policy_text(document: Mapping[str, Any]) -> str:
    """The document as JSON with statement i on line STATEMENT_FIRST_LINE + i, so that the line of a
    finding tells which statement it is about."""
    header = {key: value for key, value in document.items() if key != "Statement"}
    opening = json.dumps(header)[:-1] + (", " if header else "") + '"Statement": ['
    body = ",\n".join(json.dumps(statement) for statement in _statements(document))
    return f"{opening}\n{body}\n]}}"


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _findings_of(named: NamedPolicy, raw_findings: Iterable[Mapping[str, Any]]) -> list[Finding]:
    statements = _statements(named.document)
    findings = []
    for raw in raw_findings:
        issue = str(raw["issue"])
        severity = SEVERITY_OVERRIDES.get(issue, str(raw["severity"]))
        location = raw.get("location") or {}
        index = int(location.get("line", 0)) - STATEMENT_FIRST_LINE
        statement = statements[index] if 0 <= index < len(statements) else {}
        resources = ", ".join(_listed(statement.get("Resource", statement.get("NotResource"))))
        detail = raw.get("detail")
        row = Finding(named.principal, named.policy, severity, issue, "", resources, str(raw["title"]))
        match issue:
            case "RESOURCE_MISMATCH":  # one row per action, with the resource format it would need
                findings += [
                    replace(row, action=item["action"], detail=f"needs {item['required_format']}")
                    for item in detail or []
                ]
                continue
            case "RESOURCE_STAR":
                findings += [replace(row, action=str(action)) for action in _listed(detail)]
                continue
            case "UNKNOWN_ACTION" | "UNKNOWN_PREFIX":
                row = replace(row, action=str(location.get("string", "")), detail=str(detail))
            case "INVALID_ARN":
                row = replace(row, resource=str(location.get("string", "")), detail=str(detail))
            case "RESOURCE_POLICY_PRIVILEGE_ESCALATION" if escalation := PRIVILEGE_ESCALATION.search(
                str(detail)
            ):
                row = replace(
                    row, action=escalation["granted"], resource=escalation["resource"], detail=str(detail)
                )
            case _:
                named_action = re.search(r"for action (\S+)", str(detail or ""))
                row = replace(
                    row,
                    action=named_action.group(1) if named_action else "",
                    detail=str(detail) if detail else row.detail,
                )
        findings.append(row)
    return list(dict.fromkeys(findings))  # a wildcard can name one action twice in a statement


def lint_policies(policies: Sequence[NamedPolicy]) -> tuple[str, list[Finding]]:
    """(parliament's version, the findings of every policy)."""
    version, results = run_parliament([policy_text(named.document) for named in policies])
    findings: list[Finding] = []
    for named, raw_findings in zip(policies, results, strict=True):
        findings += _findings_of(named, raw_findings)
    return version, findings


def lint_template(
    template_path: Path, accepted_path: Path, parameters: Mapping[str, str] | None = None
) -> LintReport:
    policies = TemplatePolicies(template_path, parameters).policies_to_lint()
    version, findings = lint_policies(policies)
    findings, stale = apply_accepted(findings, load_accepted(accepted_path))
    findings.sort(key=lambda f: (-SEVERITIES.index(f.severity), f.principal, f.policy, f.issue, f.action))
    return LintReport(version, tuple(policies), tuple(findings), tuple(stale))


# ---------------------------------------------------------------------- output
COLUMNS = ("principal", "policy", "severity", "finding", "action", "resource", "accepted-reason")


def format_table(findings: Sequence[Finding]) -> str:
    rows = [
        (f.principal, f.policy, f.severity, f"{f.issue}: {f.detail}", f.action, f.resource, f.accepted_reason)
        for f in findings
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(COLUMNS, *rows, strict=False)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [COLUMNS, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def report_text(report: LintReport, accepted_path: Path, minimum_severity: str) -> str:
    shown = [finding for finding in report.findings if at_least(finding.severity, minimum_severity)]
    hidden = len(report.findings) - len(shown)
    identity = sum(1 for policy in report.policies if policy.kind == "identity")
    gated = [finding for finding in report.findings if at_least(finding.severity, FAILING_SEVERITY)]
    lines = [format_table(shown)] if shown else []
    lines.append(
        f"xpi iam lint: {len(report.policies)} policies ({identity} identity, "
        f"{len(report.policies) - identity} resource), parliament {report.parliament_version}: "
        f"{len(gated)} findings at {FAILING_SEVERITY} or above, {len(report.failures)} not accepted"
        + (
            f"; {hidden} below {minimum_severity} not shown (--minimum-severity LOW shows them)"
            if hidden
            else ""
        )
    )
    for entry in report.stale:
        lines.append(
            f"xpi iam lint: {accepted_path} accepts a finding that no longer occurs, remove it: "
            f"{entry.principal} {entry.issue} {entry.action} {entry.resource}".rstrip()
        )
    return "\n".join(lines)


def _parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not name or not separator:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpi iam", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lint = commands.add_parser("lint", help="lint every IAM policy of the template with parliament")
    lint.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="the SAM template (source)")
    lint.add_argument(
        "--accepted", type=Path, help=f"accepted findings (default: {ACCEPTED_FILE} in the template's folder)"
    )
    lint.add_argument(
        "--parameter",
        action="append",
        type=_parameter,
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter other than its default (repeat for more), e.g. to lint an Fn::If branch",
    )
    lint.add_argument("--minimum-severity", default=FAILING_SEVERITY, choices=SEVERITIES[1:])
    args = parser.parse_args(argv)

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # feature-toggle chatter
    template = args.template.resolve()
    accepted_path = args.accepted or template.parent / ACCEPTED_FILE
    report = lint_template(template, accepted_path, dict(args.parameter))
    print(report_text(report, accepted_path, args.minimum_severity))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
