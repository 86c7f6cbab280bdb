"""Batch files, pure: the uploads an S3 notification names, batch ids, streaming a JSONL (or gzip JSONL)
body line by line, turning a line into an inference request with the file's defaults, the limits and
fan-out window, the results-file line and why a batch failed.

Nothing here reads a whole file: lines come one at a time from a binary stream.
"""

import gzip
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any
from urllib.parse import unquote_plus

from xpi.domain.errors import RequestInvalid, XpiError, known_code, safe_message
from xpi.domain.intake import parse_json_object, parse_request
from xpi.domain.outcome import describe_error
from xpi.models.batch import BatchObject, LineResult, S3Notification
from xpi.models.request import MAX_REQUEST_BYTES, InferenceRequest
from xpi.models.workflow import StepError

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
MANIFEST_SUFFIX = ".manifest.json"
# Fields a file's defaults may give every line; a line's own value wins.
DEFAULTABLE_FIELDS = frozenset({"model", "api", "system", "inference", "caller", "reply"})


class BatchInvalid(XpiError):
    """The file as a whole cannot be a batch (not JSONL, empty, over a limit): the batch fails."""

    code = "BatchInvalid"


class LineNotJson(RequestInvalid):
    """A line that is not a JSON object at all (a file of only such lines is not JSONL)."""


@dataclass(frozen=True)
class BatchLimits:
    """The configured limits of a batch file and the per-model concurrency of its fan-out."""

    max_bytes: int
    max_lines: int
    chunk_lines: int
    concurrency: Mapping[str, int]
    default_concurrency: int
    retention_days: int

    def slots_for(self, models: Sequence[str]) -> dict[str, int]:
        """{model: its concurrency}, the slots a line of a batch using these models takes."""
        return {model: concurrency_for(model, self.concurrency, self.default_concurrency) for model in models}


def batch_objects(notification: S3Notification, prefix: str) -> list[BatchObject]:
    """The uploaded objects an S3 notification names under `prefix` (s3:TestEvent and manifests name
    none). One batch per object version: its id comes from bucket, key and ETag."""
    found = []
    for record in notification.records:
        if not record.event_name.startswith("ObjectCreated"):
            continue
        if record.s3 is None:
            raise ValueError(f"an {record.event_name} record without its s3 entity")
        bucket, s3_object = record.s3.bucket.name, record.s3.object
        key = unquote_plus(s3_object.key)
        if not key.startswith(prefix) or is_manifest_key(key):
            continue
        etag = s3_object.etag or s3_object.sequencer or ""
        found.append(
            BatchObject(
                batch_id=batch_id_for(bucket, key, etag),
                bucket=bucket,
                key=key,
                version_id=s3_object.version_id,
                etag=etag,
                size=s3_object.size,
                principal=caller_of(key, record.user_identity.principal_id),
                uploaded_at=datetime.fromisoformat(record.event_time.replace("Z", "+00:00")),
            )
        )
    return found


def failure_reason(error: StepError) -> str:
    """Why a batch failed, from the error a Catch put at $.error: the error's code and its fixed message
    (xpi.domain.outcome.describe_error); the cause's own text may quote a line, so it is never copied."""
    code, message = describe_error(error)
    return f"{code}: {message}"


def batch_id_for(bucket: str, key: str, etag: str) -> str:
    """The same bytes under the same key are one batch; new content under that key is a new batch."""
    digest = hashlib.sha256(f"{bucket}\0{key}\0{etag.strip(chr(34))}".encode()).hexdigest()
    return f"b-{digest[:24]}"


def line_request_id(batch_id: str, line: int) -> str:
    """Deterministic, so a line's workflow is started at most once (the execution name)."""
    return f"{batch_id}-{line}"


def uploader_of(key: str) -> str | None:
    """The uploader's id from a batch file's key, `incoming/<aws:userid>/...` (the bucket policy lets
    each principal write only under its own aws:userid), or None for a key outside any such prefix."""
    parts = key.split("/")
    return parts[1] if len(parts) >= 3 and parts[1] and parts[-1] else None


def caller_of(key: str, event_principal: str) -> str:
    """The caller a batch's lines are judged as: the uploader's aws:userid from the key's folder (the bucket
    policy lets nobody write elsewhere), the same `<role id>:<session>` or user id an SQS SenderId carries, so
    one principal has one grant on every path. Else the S3 event's principal without its `AWS:` prefix."""
    return uploader_of(key) or event_principal.removeprefix("AWS:")


def is_jsonl_key(key: str) -> bool:
    return key.endswith(JSONL_SUFFIXES)


def is_manifest_key(key: str) -> bool:
    return key.endswith(MANIFEST_SUFFIX)


def manifest_key_for(key: str) -> str:
    """The optional sidecar holding a file's defaults: `name.jsonl(.gz)` -> `name.manifest.json`."""
    for suffix in sorted(JSONL_SUFFIXES, key=len, reverse=True):
        if key.endswith(suffix):
            return key[: -len(suffix)] + MANIFEST_SUFFIX
    return key + MANIFEST_SUFFIX


@dataclass(frozen=True)
class RawLine:
    number: int  # 1-based, as editors count
    data: bytes | None  # None when the line is over the size limit (its bytes are skipped, not kept)
    size: int


def iter_lines(
    body: IO[bytes], *, gzipped: bool, max_line_bytes: int = MAX_REQUEST_BYTES
) -> Iterator[RawLine]:
    """Lines of a (possibly gzip) stream, one at a time; an over-long line is measured and skipped."""
    stream: IO[bytes] = gzip.GzipFile(fileobj=body, mode="rb") if gzipped else body  # type: ignore[assignment]
    number = 0
    try:
        while True:
            chunk = stream.readline(max_line_bytes + 2)
            if not chunk:
                return
            number += 1
            if chunk.endswith(b"\n") or len(chunk) <= max_line_bytes:
                yield RawLine(number, chunk.rstrip(b"\r\n"), len(chunk.rstrip(b"\r\n")))
                continue
            size = len(chunk)
            while not chunk.endswith(b"\n"):  # drain the rest of the over-long line
                chunk = stream.readline(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
            yield RawLine(number, None, size)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise BatchInvalid(f"gzip: {exc}", detail="not a readable gzip file") from None


def parse_defaults(raw: str | bytes | None, origin: str) -> dict[str, Any]:
    """A file's defaults (object metadata `xpi-defaults` or the sidecar manifest), checked."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BatchInvalid(f"{origin} is not valid JSON: {exc}", detail="invalid defaults") from None
    if not isinstance(value, dict):
        raise BatchInvalid(f"{origin} must be a JSON object", detail="invalid defaults")
    defaults = value.get("defaults", value)
    if not isinstance(defaults, dict):
        raise BatchInvalid(f"{origin}: defaults must be a JSON object", detail="invalid defaults")
    unknown = set(defaults) - DEFAULTABLE_FIELDS
    if unknown:
        raise BatchInvalid(
            f"{origin}: fields {sorted(unknown)} cannot be defaults", detail="invalid defaults"
        )
    return defaults


def prepare_line(raw: RawLine, defaults: Mapping[str, Any], request_id: str) -> InferenceRequest:
    """The line as a request with the file's defaults; RequestInvalid says why a line is bad."""
    if raw.data is None:
        raise RequestInvalid(f"line is {raw.size} bytes; the limit is {MAX_REQUEST_BYTES}")
    if not raw.data.strip():
        raise RequestInvalid("line is empty")
    try:
        line = parse_json_object(raw.data)
    except RequestInvalid as exc:
        raise LineNotJson(exc.reason, problems=exc.problems) from None
    # The id is the batch's, so the line's workflow is started once and its result lands on its line.
    data = {**defaults, **line, "request_id": request_id}
    return parse_request(data)


def concurrency_for(model: str, concurrency: Mapping[str, int], fallback: int) -> int:
    """How many batch lines may call this model at once, across every batch (its quota's share)."""
    return max(1, concurrency.get(model, concurrency.get("*", fallback)))


def window_for(models: set[str], concurrency: Mapping[str, int], fallback: int) -> int:
    """The most lines of one batch in flight at once: the smallest concurrency of the models it uses
    (each line holds a slot of every model of its batch; other batches share the same slots)."""
    return min((concurrency_for(model, concurrency, fallback) for model in models), default=max(1, fallback))


def line_result_from_event(detail: Mapping[str, Any], line: int) -> LineResult:
    """A line's outcome from its `Inference *` result event detail (docs/events.md)."""
    classification = detail.get("classification")
    error = detail.get("error")
    if isinstance(error, Mapping):
        # The results file keeps the code and its fixed message only (xpi.domain.errors).
        code = known_code(str(error.get("code", "")))
        error = {"code": code, "message": safe_message(code, str(error.get("message", "")))}
    return LineResult(
        line=line,
        request_id=detail.get("request_id"),
        status=detail["status"],
        output=detail.get("output"),
        usage=detail.get("usage"),
        classification=classification,
        error=error,
        reply=detail.get("reply") or {},
    )


def line_number_of(request_id: str, batch_id: str) -> int | None:
    prefix = f"{batch_id}-"
    if not request_id.startswith(prefix) or not request_id[len(prefix) :].isdigit():
        return None
    return int(request_id[len(prefix) :])


def results_line(result: LineResult) -> bytes:
    """One line of results/<batch>.jsonl."""
    return (result.model_dump_json(exclude_none=True) + "\n").encode("utf-8")
