"""Bedrock batch inference jobs for large batch files: which batches go through a job, the job's name,
idempotency token and records, how often to look at it, and what its output means per line.

A batch goes through a job when it has at least the threshold's valid lines and every model it uses
supports batch inference (the user guide's list, `BATCH_CAPABLE`); otherwise, and for every line the
job failed or skipped, the line goes on-demand. Pure: no AWS, no clock."""

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from xpi.models.bedrock import ModelAnswer
from xpi.models.workflow import Usage

# Models the Bedrock user guide lists for batch inference (not Titan Text G1, Titan Embeddings G1,
# Llama 3.0). A cross-region inference profile (us., eu., apac., global.) of one of them qualifies.
BATCH_CAPABLE: Final = frozenset(
    {
        "anthropic.claude-3-haiku-20240307-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "amazon.nova-micro-v1:0",
        "amazon.nova-lite-v1:0",
        "amazon.nova-pro-v1:0",
        "amazon.nova-premier-v1:0",
        "amazon.titan-embed-text-v2:0",
        "meta.llama3-1-8b-instruct-v1:0",
        "meta.llama3-1-70b-instruct-v1:0",
        "meta.llama3-3-70b-instruct-v1:0",
    }
)
_PROFILE_PREFIX: Final = re.compile(r"^(us|eu|apac|global|us-gov)\.")
# Job states that end the job (the user guide's statuses); every other one is still going.
TERMINAL: Final = frozenset({"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"})
WITH_OUTPUT: Final = frozenset({"Completed", "PartiallyCompleted"})
# How long to wait before each look at a running job: growing, then capped. A job takes minutes to
# hours; a look every few seconds would cost a state transition and a Lambda call each. 24 hours of
# job cost 31 looks.
CHECK_SCHEDULE_S: Final = (60, 120, 240, 480, 900, 1800)
CHECK_CAP_S: Final = 3600
RECORD_ID: Final = re.compile(r"^L(\d{10})$")


def base_model(model_id: str) -> str:
    return _PROFILE_PREFIX.sub("", model_id, count=1)


def supports_batch(model_id: str) -> bool:
    return base_model(model_id) in BATCH_CAPABLE


def use_job(valid_lines: int, model_ids: Sequence[str], threshold: int) -> bool:
    """A job for this batch: enough valid lines, one model (a job runs one), and that model batch-capable.
    A threshold of 0 switches jobs off."""
    return (
        threshold > 0
        and valid_lines >= threshold
        and len(set(model_ids)) == 1
        and supports_batch(model_ids[0])
    )


def client_request_token(batch_id: str) -> str:
    """The same for every submission of this batch, so a retried CreateModelInvocationJob returns the job
    the first one made (Bedrock's idempotency token: letters, digits and single hyphens)."""
    return f"xpi-{batch_id}"


def job_name(batch_id: str) -> str:
    return f"xpi-{batch_id}"


def record_id(line: int) -> str:
    """11 characters, as Bedrock's own record ids are; sortable, and the line number reads back."""
    return f"L{line:010d}"


def line_of(identifier: str) -> int | None:
    match = RECORD_ID.match(identifier)
    return int(match.group(1)) if match else None


def input_key(batch_id: str) -> str:
    return f"xpi/{batch_id}/input/records.jsonl"


def output_prefix(batch_id: str) -> str:
    return f"xpi/{batch_id}/output/"


def output_key(batch_id: str, job_id: str) -> str:
    """Where Bedrock writes a job's output: <output prefix>/<job id>/<input file name>.out."""
    return f"{output_prefix(batch_id)}{job_id}/records.jsonl.out"


def records_body(records: Iterable[tuple[int, Mapping[str, Any]]]) -> bytes:
    """Bedrock's JSONL input: one `{"recordId", "modelInput"}` per line, in input order."""
    return "".join(
        json.dumps({"recordId": record_id(line), "modelInput": model_input}, separators=(",", ":")) + "\n"
        for line, model_input in records
    ).encode()


def next_check_s(checks_done: int) -> int:
    return CHECK_SCHEDULE_S[checks_done] if checks_done < len(CHECK_SCHEDULE_S) else CHECK_CAP_S


@dataclass(frozen=True)
class RecordFailure:
    code: int | str
    message: str


@dataclass
class JobResults:
    """A job's output mapped back to input lines: what the model answered, what it refused or failed,
    and the lines it never got to (a partially completed, stopped or expired job)."""

    answered: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: dict[int, RecordFailure] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)

    def on_demand(self) -> list[int]:
        """The lines to run on-demand, in input order: failed or missing."""
        return sorted({*self.failed, *self.missing})


def _first_records(output_lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each line's first readable record of the `.out` file, with its line: a line's first record decides;
    blank, unreadable and unplaceable records are skipped."""
    seen: set[int] = set()
    for text in output_lines:
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        line = line_of(str(record.get("recordId", "")))
        if line is None or line in seen:
            continue
        seen.add(line)
        yield line, record


def _answered(record: Mapping[str, Any]) -> bool:
    return record.get("error") is None and isinstance(record.get("modelOutput"), dict)


def answered_lines(output_lines: Iterable[str]) -> set[int]:
    """The lines the job answered (a record with a `modelOutput` and no `error`), without keeping the
    answers: what the last page of a finish needs to release every other line on-demand."""
    return {line for line, record in _first_records(output_lines) if _answered(record)}


def parse_output(output_lines: Iterable[str], submitted: Sequence[int]) -> JobResults:
    """The `.out` file's lines against the lines submitted. A record with an `error` failed; a line with
    no record in the output is missing; a record for a line not submitted, or unreadable, is ignored
    (it cannot be put on any line)."""
    results = JobResults()
    wanted = set(submitted)
    for line, record in _first_records(output_lines):
        if line not in wanted:
            continue
        if _answered(record):
            results.answered[line] = record["modelOutput"]
        else:
            error = record.get("error")
            error = error if isinstance(error, dict) else {}
            results.failed[line] = RecordFailure(
                code=error.get("errorCode", "missing"), message=str(error.get("errorMessage", "no output"))
            )
    results.missing = [
        line for line in submitted if line not in results.answered and line not in results.failed
    ]
    return results


JOB_CREDENTIAL: Final = "batch-job"  # what lineage records as the credential of a job's answer


def model_input(
    model_id: str, body: Mapping[str, Any] | None, converse: Mapping[str, Any]
) -> dict[str, Any] | None:
    """A line's job record (`modelInput`, the model's native InvokeModel body): the request's own body
    (api invoke_model), or its Converse arguments in the model family's native form (Anthropic's
    Messages API, Nova's messages-v1). None for a Converse request of another family: it goes on-demand."""
    if body is not None:
        return dict(body)
    family = base_model(model_id)
    config = dict(converse.get("inferenceConfig") or {})
    if family.startswith("anthropic."):
        native: dict[str, Any] = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": config.get("maxTokens", 1024),
            "messages": [
                {
                    "role": message["role"],
                    "content": [
                        {"type": "text", "text": block["text"]}
                        for block in message["content"]
                        if "text" in block
                    ],
                }
                for message in converse.get("messages", [])
            ],
        }
        for source, target in (
            ("temperature", "temperature"),
            ("topP", "top_p"),
            ("stopSequences", "stop_sequences"),
        ):
            if source in config:
                native[target] = config[source]
        system = [
            item["text"]
            for item in converse.get("system", [])
            if isinstance(item, Mapping) and "text" in item
        ]
        if system:
            native["system"] = "\n".join(system)
        return native
    if family.startswith("amazon.nova-"):
        return {"schemaVersion": "messages-v1", **converse}
    return None


def _text(model_output: Mapping[str, Any]) -> str | None:
    content = model_output.get("content")  # Anthropic
    if not isinstance(content, list):  # Nova
        message = (model_output.get("output") or {}).get("message") or {}
        content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, list):
        return None
    return "".join(str(block.get("text", "")) for block in content if isinstance(block, Mapping))


def job_answer(model_output: Mapping[str, Any], *, converse: bool = False) -> ModelAnswer:
    """A job record's `modelOutput` as the answer of the call it replaces: for an InvokeModel request the
    same native body, for a Converse request its text; its stop reason and token counts (Anthropic's
    `usage.input_tokens`, Nova's `usage.inputTokens`, Llama's `prompt_token_count`)."""
    usage = model_output.get("usage") if isinstance(model_output.get("usage"), Mapping) else {}
    assert isinstance(usage, Mapping)

    def count(*names: str) -> int:
        for source in (usage, model_output):
            for name in names:
                if isinstance(source.get(name), int):
                    return int(source[name])
        return 0

    stop = model_output.get("stop_reason", model_output.get("stopReason"))
    text = _text(model_output) if converse else None
    return ModelAnswer(
        text=text,
        body=None if text is not None else dict(model_output),
        stop_reason=stop if isinstance(stop, str) else None,
        usage=Usage(
            input_tokens=count("input_tokens", "inputTokens", "prompt_token_count"),
            output_tokens=count("output_tokens", "outputTokens", "generation_token_count"),
        ),
        latency_ms=0,
        credential_version=JOB_CREDENTIAL,
        billing="batch",  # priced at the batch price (xpi.domain.pricing.batch_prices)
    )
