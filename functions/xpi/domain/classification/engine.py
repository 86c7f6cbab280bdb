"""Classify a request's segments and apply the policy: the one entry point the classify step calls."""

from __future__ import annotations

from collections.abc import Sequence

from ..policy import ACTION_RANK, Action, Policy
from .categories import placeholder
from .detectors import scan
from .models import Assessment, Decision, Detection, Detector, Finding, Segment
from .normalize import normalize
from .render import render

_UNINSPECTABLE_KINDS = frozenset({"image", "binary"})


def detect(text: str, extra_detectors: Sequence[Detector] = ()) -> list[Detection]:
    """Every detection in ``text`` (built-in and extra detectors), sorted by position, duplicates removed.

    The built-in detectors run on the rendered and normalized text (HTML character references,
    quoted-printable and RTF rendered, see ``render``; fullwidth forms, format characters, confusable
    letters, Unicode dashes and spaces folded, see ``normalize``) and their spans are mapped back to
    ``text``: from the first to the last original character the match came from, so a redaction replaces
    exactly the characters that were sent. Extra detectors get ``text`` itself and answer in its offsets.
    Overlapping detections of the same category are merged into one span.
    """
    rendered = render(text)
    folded = normalize(text if rendered is None else rendered.text)
    found = scan(folded.text, folded.ascii_case, folded.lower)
    for step in (folded, rendered):
        if step is not None and not step.identity:
            found = {Detection(det.category, *step.original_span(det.start, det.end)) for det in found}
    for detector in extra_detectors:
        for det in detector.detect(text):
            if not 0 <= det.start <= det.end <= len(text):
                # A span that cannot be placed cannot be redacted either: fail closed, loudly.
                raise ValueError(
                    f"detector {detector.name} returned span {det.start}-{det.end} outside the text"
                )
            found.add(det)
    ordered = sorted(found, key=lambda d: (d.category, d.start, -d.end))
    merged: list[Detection] = []
    for det in ordered:
        last = merged[-1] if merged else None
        if last is not None and last.category == det.category and det.start < last.end:
            if det.end > last.end:
                merged[-1] = Detection(last.category, last.start, det.end)
            continue
        merged.append(det)
    merged.sort(key=lambda d: (d.start, d.end, d.category))
    return merged


def redact(text: str, spans: Sequence[Detection]) -> str:
    """``text`` with each span replaced by its typed placeholder; overlapping spans collapse into one."""
    pieces: list[str] = []
    cursor = 0
    for det in sorted(spans, key=lambda d: (d.start, -d.end)):
        if det.end <= cursor:
            continue
        start = max(det.start, cursor)
        if start == det.start:
            pieces.append(text[cursor:start])
            pieces.append(placeholder(det.category))
        cursor = det.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def classify_segments(
    segments: Sequence[Segment],
    policy: Policy,
    model_id: str,
    extra_detectors: Sequence[Detector] = (),
) -> Assessment:
    """Inspect every segment, resolve each finding's action under ``policy`` for ``model_id``, decide.

    The decision is the most restrictive action over all findings (``allow`` when there are none).
    Findings and reasons carry categories, locations and spans, never the matched text.
    """
    resolved: dict[str, tuple[Action, str | None]] = {}

    def action_of(category: str) -> tuple[Action, str | None]:
        hit = resolved.get(category)
        if hit is None:
            hit = resolved[category] = policy.action_for(category, model_id)
        return hit

    findings: list[Finding] = []
    to_redact: dict[str, tuple[str, list[Detection]]] = {}
    decision = Action.ALLOW
    for segment in segments:
        if segment.text is None or segment.kind in _UNINSPECTABLE_KINDS:
            detections = [Detection("content.uninspectable", 0, 0)]
        else:
            detections = detect(segment.text, extra_detectors)
        for det in detections:
            action, _rule = action_of(det.category)
            findings.append(
                Finding(
                    category=det.category,
                    location=segment.location,
                    start=det.start,
                    end=det.end,
                    action=action.value,
                )
            )
            if ACTION_RANK[action] > ACTION_RANK[decision]:
                decision = action
            if action is Action.REDACT and segment.text is not None:
                to_redact.setdefault(segment.location, (segment.text, []))[1].append(det)

    redacted: dict[str, str] = {}
    if decision is Action.REDACT:
        redacted = {location: redact(text, spans) for location, (text, spans) in to_redact.items()}

    categories: dict[str, int] = {}
    for finding in findings:
        categories[finding.category] = categories.get(finding.category, 0) + 1
    final: Decision = decision.value
    return Assessment(
        decision=final,
        findings=findings,
        redacted=redacted,
        categories=categories,
        security_alert=any(f.category.startswith("classified.") for f in findings),
        reasons=_reasons(final, findings, resolved, model_id),
    )


def _reasons(
    decision: Decision, findings: list[Finding], resolved: dict[str, tuple[Action, str | None]], model_id: str
) -> list[str]:
    if not findings:
        return ["allow: no findings"]
    by_category: dict[str, list[Finding]] = {}
    for finding in findings:
        by_category.setdefault(finding.category, []).append(finding)
    lines = [
        f"{decision}: most restrictive action over {len(findings)} finding(s) in {len(by_category)} "
        f"categor{'y' if len(by_category) == 1 else 'ies'}"
    ]
    ordered = sorted(by_category.items(), key=lambda item: (-ACTION_RANK[item[1][0].action], item[0]))
    for category, items in ordered:
        locations = sorted({f.location for f in items})
        shown = ", ".join(locations[:5]) + (f" and {len(locations) - 5} more" if len(locations) > 5 else "")
        action, rule = resolved[category]
        by_rule = f" (policy rule '{rule}' for model {model_id})" if rule else ""
        lines.append(f"{category}: {len(items)} finding(s) in {shown} -> {action.value}{by_rule}")
    return lines
