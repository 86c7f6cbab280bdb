"""The compliance report for a period, built from what xpi records: the period's lineage items, the
configuration checks' latest run, the SSM history of the policy and routing, the admin routes' calls
and the tamper check. Pure: the service gathers the inputs through the ports.

Each item carries the NIST SP 800-53 controls it evidences (xpi/compliance/controls.json). Refusals are
counted by the lineage error's code, whatever it is (a new refusal reason appears without a change here).
"""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from xpi.domain.compliance_controls import ITEMS
from xpi.models.compliance import (
    AdminAction,
    CheckRun,
    ComplianceReport,
    ConfigChange,
    ReportItem,
    TamperCheck,
)
from xpi.models.lineage import LineageItem

SECURITY_ALERT_PREFIX: Final = "classified."  # the categories that raise a Security Alert (the engine's rule)
ENCRYPTION_CHECKS: Final = (
    "s3-default-encryption-kms",
    "s3-bucket-key-enabled",
    "s3-ssl-requests-only",
    "log-group-encrypted",
    "kms-key-rotation",
    "dynamodb-encrypted-stack-key",
    "sqs-encrypted-kms",
    "secrets-using-cmk",
)
RETENTION_CHECKS: Final = ("log-group-retention", "s3-object-lock-compliance", "dynamodb-pitr-enabled")
MAX_LISTED: Final = 100  # request ids listed under an item; the counts are complete


@dataclass(frozen=True)
class ReportInputs:
    first: date
    last: date
    lineage: Sequence[LineageItem]
    checks: CheckRun | None
    config_changes: Sequence[ConfigChange]
    admin_actions: Sequence[AdminAction]
    tamper: TamperCheck
    settings: Mapping[str, Any] = field(default_factory=dict)  # retention and encryption as configured


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items()))


def _decisions(items: Sequence[LineageItem]) -> dict[str, Any]:
    return {
        "total": len(items),
        "by_status": _sorted(Counter(i.status for i in items)),
        "by_decision": _sorted(
            Counter(i.classification.decision if i.classification else "none" for i in items)
        ),
        "by_source": _sorted(Counter(i.source for i in items)),
    }


def _categories(items: Sequence[LineageItem]) -> dict[str, Any]:
    findings: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    for item in items:
        for category, count in (item.classification.categories if item.classification else {}).items():
            findings[category] += count
            requests[category] += 1
    return {"findings": _sorted(findings), "requests": _sorted(requests)}


def _with_decision(items: Sequence[LineageItem], decision: str) -> list[LineageItem]:
    return [i for i in items if i.classification and i.classification.decision == decision]


def _redactions(items: Sequence[LineageItem]) -> dict[str, Any]:
    redacted = _with_decision(items, "redact")
    return {
        "requests": len(redacted),
        "findings": sum(i.classification.findings for i in redacted if i.classification),
        "by_status": _sorted(Counter(i.status for i in redacted)),
    }


def _blocks(items: Sequence[LineageItem]) -> dict[str, Any]:
    blocked = _with_decision(items, "block")
    categories: Counter[str] = Counter()
    for item in blocked:
        categories.update(item.classification.categories if item.classification else {})
    return {"requests": len(blocked), "by_category": _sorted(categories)}


def is_security_alert(item: LineageItem) -> bool:
    categories = item.classification.categories if item.classification else {}
    return any(category.startswith(SECURITY_ALERT_PREFIX) for category in categories)


def _alerts(items: Sequence[LineageItem]) -> dict[str, Any]:
    alerted = [i.request_id for i in items if is_security_alert(i)]
    return {"requests": len(alerted), "request_ids": sorted(alerted)[:MAX_LISTED]}


def _refusals(items: Sequence[LineageItem]) -> dict[str, Any]:
    failed = [i for i in items if i.status == "FAILED"]
    return {
        "failed": len(failed),
        "by_reason": _sorted(Counter(i.error.code if i.error else "unknown" for i in failed)),
    }


def _models(items: Sequence[LineageItem]) -> dict[str, Any]:
    called = [i for i in items if i.model_id]
    return {
        "requested": _sorted(Counter(i.model_requested for i in items)),
        "models": _sorted(Counter(i.model_id for i in called if i.model_id)),
        "regions": _sorted(Counter(i.commercial_region for i in called if i.commercial_region)),
    }


def _callers(items: Sequence[LineageItem]) -> dict[str, Any]:
    callers = Counter(i.caller_principal for i in items)
    return {"count": len(callers), "requests": _sorted(callers)}


def _version(revision: int | None, digest: str | None) -> str:
    return f"r{revision}:{(digest or '')[:12]}"


def _versions(items: Sequence[LineageItem]) -> dict[str, Any]:
    judged = [i for i in items if i.policy_revision is not None or i.routing_revision is not None]
    return {
        "policy": _sorted(Counter(_version(i.policy_revision, i.policy_sha256) for i in judged)),
        "routing": _sorted(Counter(_version(i.routing_revision, i.routing_sha256) for i in judged)),
        "default_applied": sum(bool(i.config_fallback) for i in judged),
    }


def _changes(changes: Sequence[ConfigChange]) -> dict[str, Any]:
    ordered = sorted(changes, key=lambda c: (c.modified_at, c.document, c.version))
    return {
        "count": len(ordered),
        "by_document": _sorted(Counter(c.document for c in ordered)),
        "changes": [c.model_dump(mode="json") for c in ordered],
    }


def _credentials(items: Sequence[LineageItem]) -> dict[str, Any]:
    used = sorted((i for i in items if i.credential_version), key=lambda i: i.created_at)
    versions: dict[str, dict[str, Any]] = {}
    for item in used:
        version = str(item.credential_version)
        seen = versions.setdefault(
            version,
            {"type": item.credential_type, "requests": 0, "first_used": item.created_at, "max_age_s": 0},
        )
        seen["requests"] += 1
        seen["last_used"] = item.created_at
        seen["max_age_s"] = max(seen["max_age_s"], item.credential_age_s or 0)
    return {
        "by_type": _sorted(Counter(str(i.credential_type) for i in used)),
        "versions": versions,
        # Each version after the first one used in the period is a rotation that took effect in it.
        "rotations": max(len(versions) - 1, 0),
        "max_age_s": max((i.credential_age_s or 0 for i in used), default=0),
    }


def _admin(actions: Sequence[AdminAction]) -> dict[str, Any]:
    allowed = [a for a in actions if a.status < 400]
    refused = [a for a in actions if a.status in (401, 403)]
    return {
        "allowed": len(allowed),
        "refused": len(refused),
        "failed": len(actions) - len(allowed) - len(refused),
        "by_route": _sorted(Counter(f"{a.method} {a.path} {a.status}" for a in actions)),
    }


def _evaluations_of(run: CheckRun | None, checks: Iterable[str]) -> dict[str, Any]:
    wanted = set(checks)
    evaluations = [e for e in (run.evaluations if run else []) if e.check in wanted]
    return {
        "passed": sum(e.status == "PASS" for e in evaluations),
        "failed": sum(e.status == "FAIL" for e in evaluations),
        "resources": [f"{e.check} {e.resource}: {e.status} ({e.detail})" for e in evaluations],
    }


def _retention(inputs: ReportInputs) -> dict[str, Any]:
    configured = {k: v for k, v in inputs.settings.items() if k.endswith("retention_days")}
    return {"configured": configured, "checked": _evaluations_of(inputs.checks, RETENTION_CHECKS)}


def _encryption(inputs: ReportInputs) -> dict[str, Any]:
    configured = {k: v for k, v in inputs.settings.items() if not k.endswith("retention_days")}
    return {"configured": configured, "checked": _evaluations_of(inputs.checks, ENCRYPTION_CHECKS)}


def _check_figures(run: CheckRun | None) -> dict[str, Any]:
    if run is None:
        return {"pass_rate": None, "checked_at": None, "checks": 0, "failed_checks": []}
    return {
        "pass_rate": run.pass_rate,
        "checked_at": run.checked_at.isoformat(),
        "checks": len(run.checks),
        "evaluations": len(run.evaluations),
        "failed_checks": [c.check for c in run.checks if c.status == "FAIL"],
    }


def build_report(inputs: ReportInputs, now: datetime) -> ComplianceReport:
    items = [i for i in inputs.lineage if inputs.first.isoformat() <= i.day <= inputs.last.isoformat()]
    figures: dict[str, dict[str, Any]] = {
        "requests_by_decision": _decisions(items),
        "requests_by_category": _categories(items),
        "redactions": _redactions(items),
        "blocks": _blocks(items),
        "security_alerts": _alerts(items),
        "refusals": _refusals(items),
        "models_and_regions": _models(items),
        "callers": _callers(items),
        "configuration_versions": _versions(items),
        "configuration_changes": _changes(inputs.config_changes),
        "credentials": _credentials(items),
        "admin_actions": _admin(inputs.admin_actions),
        "retention": _retention(inputs),
        "encryption": _encryption(inputs),
        "tamper_check": inputs.tamper.model_dump(mode="json"),
        "configuration_checks": _check_figures(inputs.checks),
    }
    return ComplianceReport(
        period_from=inputs.first.isoformat(),
        period_to=inputs.last.isoformat(),
        generated_at=now,
        pass_rate=inputs.checks.pass_rate if inputs.checks else None,
        checked_at=inputs.checks.checked_at if inputs.checks else None,
        checks=list(inputs.checks.checks) if inputs.checks else [],
        evaluations=list(inputs.checks.evaluations) if inputs.checks else [],
        items=[
            ReportItem(
                item=name,
                title=ITEMS[name].title,
                controls=list(ITEMS[name].controls),
                justification=ITEMS[name].justification,
                figures=values,
            )
            for name, values in figures.items()
        ],
    )
