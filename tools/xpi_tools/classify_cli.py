"""``xpi classify``: run the boundary classifier and policy over a document or a JSONL stream.

    xpi classify [--policy FILE] [--model ID] [--jsonl] [FILE|-]

Without ``--jsonl`` the whole input (a file, or standard input for ``-`` or no argument) is one document;
the output is one JSON object: ``decision``, ``findings`` (category, location, start, end, action),
``categories``, ``security_alert``, ``reasons`` and, when the decision is ``redact``, ``redacted_text``.
Input that is not UTF-8 text is classified as binary content (uninspectable).

With ``--jsonl`` every input line is a JSON object with a ``text`` string (an ``id`` is echoed back). For
each line, in order, one JSON line is printed with ``line``, ``decision``, ``findings`` (category, start,
end), ``categories``, ``security_alert`` and, for ``redact``, ``redacted_text``. A line that cannot be
classified (not JSON, no ``text`` string, empty) yields ``{"line": N, "error": "..."}`` and the run goes on.

Every input is classified exactly as the workflow's classify step classifies a request whose prompt is
that text (``xpi.services.classification.assess``: the same inspection, policy resolution and model
aliases). Binary input is a request carrying a document it cannot read. Locations are reported as
``input``.

Exit status: 0 when every input was classified (whatever the decisions), 1 when some JSONL line was bad,
2 for a usage error, an unreadable input or an invalid policy file. Matched text is never printed except
inside ``redacted_text``, where the redacted spans are already replaced.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from xpi.domain.classification import Assessment, Finding
from xpi.domain.policy import Policy, load_default_policy
from xpi.domain.routing import load_default_routing
from xpi.models.request import InferenceRequest
from xpi.services.classification import assess

PROG = "xpi classify"
_LOCATION = "input"
_PROMPT = "prompt"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Classify text for classification markings, CUI, export control and PII, and apply "
        "the policy (allow / redact / block).",
    )
    parser.add_argument(
        "--policy", type=Path, metavar="FILE", help="policy JSON file (default: the policy shipped with xpi)"
    )
    parser.add_argument(
        "--model",
        default="",
        metavar="ID",
        help="target Bedrock model or inference profile id, for the policy's model_rules (default: none)",
    )
    parser.add_argument(
        "--jsonl", action="store_true", help="read JSON lines with a 'text' field; print one result per line"
    )
    parser.add_argument("input", nargs="?", default="-", metavar="FILE|-", help="input file; '-' is stdin")
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _load_policy(path: Path | None) -> Policy:
    if path is None:
        return load_default_policy()
    return Policy.model_validate_json(path.read_bytes())


def _text_request(text: str, model_id: str) -> InferenceRequest:
    """The request the workflow would classify for this text: its prompt. Built without the request
    contract's size limits (an operator may classify a document of any size)."""
    return InferenceRequest.model_construct(model=model_id, prompt=text)


def _binary_request(model_id: str) -> InferenceRequest:
    """A request carrying content that is not text: one document block the classifier cannot read."""
    block = {"document": {"format": "txt", "name": _LOCATION, "source": {"bytes": ""}}}
    return InferenceRequest.model_validate(
        {"model": model_id or "-", "messages": [{"role": "user", "content": [block]}]}
    )


def _assess(request: InferenceRequest, policy: Policy) -> Assessment:
    return assess(request, policy=policy, detectors=(), routing=load_default_routing())


def _finding(finding: Finding) -> dict[str, Any]:
    return {**finding.model_dump(), "location": _LOCATION}


def _document_result(assessment: Assessment, text: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "decision": assessment.decision,
        "findings": [_finding(f) for f in assessment.findings],
        "categories": assessment.categories,
        "security_alert": assessment.security_alert,
        "reasons": assessment.reasons,
    }
    if assessment.decision == "redact" and text is not None:
        result["redacted_text"] = assessment.redacted.get(_PROMPT, text)
    return result


def _classify_document(stream: IO[bytes], policy: Policy, model_id: str) -> dict[str, Any]:
    data = stream.read()
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    request = _binary_request(model_id) if text is None else _text_request(text, model_id)
    return _document_result(_assess(request, policy), text)


def _parse_line(raw: bytes) -> tuple[str, Any]:
    """The ``text`` and ``id`` of one JSONL line; raises ValueError with a message for the error line."""
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not line.strip():
        raise ValueError("empty line")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str):
        raise ValueError("missing 'text' string field")
    return text, record.get("id")


def _classify_lines(stream: IO[bytes], policy: Policy, model_id: str) -> Iterator[dict[str, Any]]:
    for number, raw in enumerate(stream, start=1):
        try:
            text, record_id = _parse_line(raw)
        except ValueError as exc:
            yield {"line": number, "error": f"line {number}: {exc}"}
            continue
        assessment = _assess(_text_request(text, model_id), policy)
        result: dict[str, Any] = {"line": number}
        if record_id is not None:
            result["id"] = record_id
        result["decision"] = assessment.decision
        result["findings"] = [
            {"category": f.category, "start": f.start, "end": f.end} for f in assessment.findings
        ]
        result["categories"] = assessment.categories
        result["security_alert"] = assessment.security_alert
        if assessment.decision == "redact":
            result["redacted_text"] = assessment.redacted.get(_PROMPT, text)
        yield result


def _open_input(name: str) -> IO[bytes]:
    if name != "-":
        return Path(name).open("rb")
    buffer: IO[bytes] | None = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return buffer
    return io.BytesIO(sys.stdin.read().encode("utf-8"))  # a replaced sys.stdin without a byte buffer


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``xpi classify``; ``argv`` is the arguments after the subcommand."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits for --help and for usage errors
        return exc.code if isinstance(exc.code, int) else 2
    try:
        policy = _load_policy(args.policy)
    except OSError as exc:
        _error(f"cannot read policy {args.policy}: {exc.strerror or exc}")
        return 2
    except ValidationError as exc:
        _error(f"invalid policy {args.policy}: {exc.error_count()} error(s)\n{exc}")
        return 2
    try:
        stream = _open_input(args.input)
    except OSError as exc:
        _error(f"cannot read {args.input}: {exc.strerror or exc}")
        return 2
    out = sys.stdout
    try:
        if not args.jsonl:
            json.dump(_classify_document(stream, policy, args.model), out, indent=2, ensure_ascii=False)
            out.write("\n")
            return 0
        failed = False
        for result in _classify_lines(stream, policy, args.model):
            failed = failed or "error" in result
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
        return 1 if failed else 0
    finally:
        if args.input != "-":
            stream.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
