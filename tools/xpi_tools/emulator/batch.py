"""Bedrock batch inference jobs (``CreateModelInvocationJob`` and friends) over the commercial
account's S3, on the emulator's clock.

Wire shapes follow botocore's ``bedrock`` service model (rest-json, ISO 8601 timestamps); statuses,
the output layout (``<output prefix>/<job id>/<input file>.out`` and ``manifest.json.out``) and the
validation rules follow the Bedrock user guide ("Format and upload your batch inference data", "View
the results of a batch inference job", the job statuses). A job moves

    Submitted -> Validating -> Scheduled -> InProgress -> Completed
                          \\-> Failed   \\-> Expired     \\-> PartiallyCompleted (timed out)

and, on StopModelInvocationJob, Stopping -> Stopped. Each phase lasts ``BatchSettings.phase_seconds``
on the jobs' clock: the emulator's, which ``PUT /_emulator/clock`` skews, plus what ``PUT
/_emulator/batch {"advance_seconds": N}`` moved it ahead by (without expiring SigV4 signatures).
Validation (reading the input) and the output (writing it) go through a worker thread, signed with
the credentials the job's service role implies; inference runs the same model code as InvokeModel
and Converse. Everything else is touched only on the emulator's event-loop thread.

Not modelled: the service role's trust policy and permissions (a role maps to one set of commercial
credentials), KMS (``s3EncryptionKeyId`` is passed to S3 as SSE-KMS, never checked against a key),
the VPC configuration (echoed), tags (accepted), the concurrent-jobs quota, the partial output of a
stopped job (a stopped job writes nothing), EventBridge job-state events, and S3 inputs referenced
from inside records (video, images).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from xpi_tools.emulator.catalogue import (
    Catalogue,
    Family,
    ModelSpec,
    decode_page_token,
    encode_page_token,
)
from xpi_tools.emulator.config import BatchSettings
from xpi_tools.emulator.errors import STATUS_BY_CODE, BedrockError, coral_constraint, validation
from xpi_tools.emulator.families import (
    converse_response,
    invoke_response,
    parse_converse,
    parse_invoke,
    titan_embed_response,
)
from xpi_tools.emulator.state import EmulatorState, FaultRule
from xpi_tools.emulator.textgen import Generation, generate

logger = logging.getLogger("xpi_tools.emulator.batch")

# The operation name batch records are matched against by injected faults (besides "any operation").
BATCH_RECORD_OPERATION: Final = "ModelInvocationJob"

STATUSES: Final = (
    "Submitted",
    "InProgress",
    "Completed",
    "Failed",
    "Stopping",
    "Stopped",
    "PartiallyCompleted",
    "Expired",
    "Validating",
    "Scheduled",
)
TERMINAL: Final = frozenset({"Completed", "Failed", "Stopped", "PartiallyCompleted", "Expired"})
STOPPABLE: Final = frozenset({"Submitted", "Validating", "Scheduled", "InProgress"})

# Foundation models that support batch inference, after the user guide's "Supported Regions and models
# for batch inference" (representative, like the catalogue): the older Titan Text G1 models, Titan
# Embeddings G1 and Llama 3 (not 3.1+) do not.
BATCH_MODELS: Final = frozenset(
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

# Patterns of botocore's bedrock service model (the AWS front end checks them).
JOB_NAME: Final = re.compile(r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}")
ROLE_ARN: Final = re.compile(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+")
TOKEN: Final = re.compile(r"[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}")
S3_URI: Final = re.compile(
    r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?"
)
ACCOUNT: Final = re.compile(r"[0-9]{12}")
KMS_KEY: Final = re.compile(
    r"(arn:aws(-[^:]+)?:kms:[a-zA-Z0-9-]*:[0-9]{12}:((key/[a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)))"
    r"|([a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)"
)
JOB_IDENTIFIER: Final = re.compile(
    r"((arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:model-invocation-job/)?[a-z0-9]{12})"
)
JOB_ID_ALPHABET: Final = string.ascii_lowercase + string.digits
RECORD_ID_ALPHABET: Final = string.ascii_uppercase + string.digits
MANIFEST: Final = "manifest.json.out"

# Emulator wording: the real service's texts for these were not available offline.
MSG_MODEL_UNSUPPORTED: Final = "The provided model doesn't support batch inference."
MSG_JOB_NOT_FOUND: Final = "The specified job {job} could not be found."
MSG_NOT_STOPPABLE: Final = "The job {job} is {status} and cannot be stopped."
MSG_TOKEN_REUSED: Final = "The clientRequestToken was already used for a different request."  # noqa: S105
MSG_ROLE_ACCOUNT: Final = "The service role must belong to the account that creates the job."
MSG_NO_ACCESS: Final = "Amazon Bedrock could not access {uri} with the service role {role}: {detail}"
MSG_NO_INPUT: Final = "No .jsonl file was found at {uri}."
MSG_TOO_FEW: Final = (
    "The job contains {count} records, fewer than the minimum of {minimum} records per batch inference job."
)
MSG_TOO_MANY: Final = (
    "The job contains {count} records, more than the maximum of {maximum} records per batch inference job."
)
MSG_FILE_TOO_MANY: Final = (
    "The input file {file} contains {count} records, more than the maximum of {maximum} records per file."
)
MSG_FILE_TOO_BIG: Final = "The input file {file} is {size} bytes, larger than the maximum of {maximum} bytes."
MSG_JOB_TOO_BIG: Final = "The job's input is {size} bytes, larger than the maximum of {maximum} bytes."
MSG_BAD_RECORD: Final = "Line {line} of {file} is not a JSON object with a modelInput object."
MSG_INTERNAL: Final = "The job failed with an internal error: {detail}"
MSG_OUTPUT: Final = "Amazon Bedrock could not write the output to {uri}: {detail}"


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_timestamp(value: str, where: str) -> float:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise coral_constraint(value, where, "Member must be an ISO 8601 timestamp") from None


def _split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _error_entry(error: BedrockError) -> dict[str, Any]:
    return {"errorCode": STATUS_BY_CODE.get(error.code, error.status), "errorMessage": error.message}


# -- the work done off the event loop ------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    key: str  # the S3 key it was read from
    name: str  # its name under the input prefix, which names its ``.out`` file
    records: list[dict[str, Any]]


@dataclass
class Outcome:
    """What inference made of the records: the output lines per file, and the manifest's counts."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    success: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class S3Access:
    """The commercial account's S3, as a job's service role reaches it."""

    def __init__(self, settings: BatchSettings, role_arn: str) -> None:
        self._settings = settings
        self._role_arn = role_arn

    def client(self) -> Any:
        key = self._settings.role_credentials.get(self._role_arn)
        if self._settings.s3_endpoint_url is None or key is None:
            reason = "no commercial S3 endpoint is configured" if key is not None else "no credentials"
            raise PermissionError(reason)
        return boto3.session.Session(
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
            aws_session_token=key.session_token,
            region_name=self._settings.s3_region,
        ).client(
            "s3",
            endpoint_url=self._settings.s3_endpoint_url,
            config=Config(
                retries={"total_max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                s3={"addressing_style": "path"},
            ),
        )


class InvalidInput(Exception):
    """The job's input breaks a rule the validation checks; the message is the job's."""


def read_input(
    settings: BatchSettings, role_arn: str, uri: str, bucket_owner: str | None
) -> list[InputFile] | str:
    """The job's input files, or the message its validation fails with."""
    bucket, key = _split_s3_uri(uri)
    owner = {"ExpectedBucketOwner": bucket_owner} if bucket_owner else {}
    try:
        s3 = S3Access(settings, role_arn).client()
        objects = _input_objects(s3, bucket, key, owner)
        _check_sizes(settings, uri, objects)
        files: list[InputFile] = []
        for object_key, name, _ in objects:
            body = s3.get_object(Bucket=bucket, Key=object_key, **owner)["Body"].read()
            records = _records(object_key, body)
            if len(records) > settings.max_records_per_file:
                raise InvalidInput(
                    MSG_FILE_TOO_MANY.format(
                        file=object_key, count=len(records), maximum=settings.max_records_per_file
                    )
                )
            files.append(InputFile(object_key, name, records))
    except InvalidInput as error:
        return str(error)
    except (PermissionError, ClientError, BotoCoreError) as error:
        return MSG_NO_ACCESS.format(uri=uri, role=role_arn, detail=error)
    return files


def _input_objects(s3: Any, bucket: str, key: str, owner: dict[str, str]) -> list[tuple[str, str, int]]:
    """(key, name under the input prefix, size) of the input: one .jsonl object, or those under a prefix."""
    if key.endswith(".jsonl"):
        size = int(s3.head_object(Bucket=bucket, Key=key, **owner)["ContentLength"])
        return [(key, key.rsplit("/", 1)[-1], size)]
    prefix = key if key == "" or key.endswith("/") else key + "/"
    objects: list[tuple[str, str, int]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **owner):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".jsonl"):
                objects.append((item["Key"], item["Key"].removeprefix(prefix), int(item["Size"])))
    return objects


def _check_sizes(settings: BatchSettings, uri: str, objects: list[tuple[str, str, int]]) -> None:
    if not objects:
        raise InvalidInput(MSG_NO_INPUT.format(uri=uri))
    for object_key, _, size in objects:
        if size > settings.max_file_bytes:
            raise InvalidInput(
                MSG_FILE_TOO_BIG.format(file=object_key, size=size, maximum=settings.max_file_bytes)
            )
    total = sum(size for _, _, size in objects)
    if total > settings.max_job_bytes:
        raise InvalidInput(MSG_JOB_TOO_BIG.format(size=total, maximum=settings.max_job_bytes))


def _records(key: str, body: bytes) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(MSG_BAD_RECORD.format(line=number, file=key)) from None
        if not isinstance(record, dict) or not isinstance(record.get("modelInput"), dict):
            raise InvalidInput(MSG_BAD_RECORD.format(line=number, file=key))
        records.append(record)
    return records


def infer(
    *,
    model: ModelSpec,
    invocation_type: str,
    files: list[InputFile],
    faults: list[FaultRule | None],
    seed: int,
    job_id: str,
) -> Outcome:
    """Every record through the model, in input order; ``faults`` (one per record) fail some."""
    outcome = Outcome()
    fault_of = iter(faults)
    index = itertools.count()
    for input_file in files:
        lines: list[str] = []
        for record in input_file.records:
            number = next(index)
            record_id = record.get("recordId")
            if not isinstance(record_id, str) or not record_id:
                record_id = _record_id(job_id, number)
            model_input = record["modelInput"]
            entry: dict[str, Any] = {"recordId": record_id, "modelInput": model_input}
            fault = next(fault_of, None)
            try:
                if fault is not None:
                    raise BedrockError(fault.error, fault.message)
                output, generation = _invoke(model, invocation_type, model_input, seed)
            except BedrockError as error:
                entry["error"] = _error_entry(error)
                outcome.errors += 1
            else:
                entry["modelOutput"] = output
                outcome.success += 1
                outcome.input_tokens += generation.input_tokens
                outcome.output_tokens += generation.output_tokens
            lines.append(json.dumps(entry, separators=(",", ":"), ensure_ascii=False))
        outcome.lines[input_file.name] = lines
    return outcome


def _record_id(job_id: str, number: int) -> str:
    """Bedrock adds an 11-character alphanumeric recordId where a record has none."""
    digest = int.from_bytes(hashlib.sha256(f"{job_id}:{number}".encode()).digest()[:8], "big")
    chars = []
    for _ in range(11):
        digest, rest = divmod(digest, len(RECORD_ID_ALPHABET))
        chars.append(RECORD_ID_ALPHABET[rest])
    return "".join(chars)


def _invoke(
    model: ModelSpec, invocation_type: str, model_input: dict[str, Any], seed: int
) -> tuple[dict[str, Any], Generation]:
    raw = json.dumps(model_input).encode()
    plan = parse_converse(model, raw) if invocation_type == "Converse" else parse_invoke(model, raw)
    if model.family is Family.TITAN_EMBED:
        generation = Generation("", plan.prompt.input_tokens, 0, "end_turn")
        return titan_embed_response(model, plan, seed), generation
    generation = generate(
        plan.prompt,
        seed=seed,
        model_id=model.model_id,
        max_tokens=plan.max_tokens,
        stop_sequences=plan.stop_sequences,
    )
    if invocation_type == "Converse":
        return converse_response(model, plan, generation, 0), generation
    return invoke_response(model, plan, generation), generation


def write_output(
    *,
    settings: BatchSettings,
    role_arn: str,
    uri: str,
    bucket_owner: str | None,
    kms_key: str | None,
    job_id: str,
    lines: dict[str, list[str]],
    manifest: dict[str, int],
) -> str | None:
    """The ``.out`` files and ``manifest.json.out`` under ``<uri>/<job id>/``; None, or why not."""
    bucket, prefix = _split_s3_uri(uri)
    base = f"{prefix.rstrip('/')}/{job_id}/" if prefix.strip("/") else f"{job_id}/"
    extra: dict[str, str] = {}
    if bucket_owner:
        extra["ExpectedBucketOwner"] = bucket_owner
    if kms_key:
        extra["ServerSideEncryption"] = "aws:kms"
        extra["SSEKMSKeyId"] = kms_key
    try:
        s3 = S3Access(settings, role_arn).client()
        for name, file_lines in lines.items():
            body = "".join(line + "\n" for line in file_lines).encode()
            s3.put_object(Bucket=bucket, Key=f"{base}{name}.out", Body=body, **extra)
        s3.put_object(Bucket=bucket, Key=f"{base}{MANIFEST}", Body=json.dumps(manifest).encode(), **extra)
    except (PermissionError, ClientError, BotoCoreError) as error:
        return MSG_OUTPUT.format(uri=uri, detail=error)
    return None


# -- jobs -------------------------------------------------------------------------------------------


@dataclass
class Job:
    job_id: str
    arn: str
    name: str
    model_id: str  # as given
    model: ModelSpec
    invoked_id: str
    role_arn: str
    token: str | None
    request: dict[str, Any]  # the create request's members, to compare a retried create with
    input_config: dict[str, Any]
    output_config: dict[str, Any]
    invocation_type: str | None
    timeout_hours: int
    vpc: dict[str, Any] | None
    submitted_at: float
    seq: int
    status: str = "Submitted"
    phase_started: float = 0.0
    modified_at: float = 0.0
    ended_at: float | None = None
    message: str | None = None
    files: list[InputFile] | None = None
    total: int | None = None
    outcome: Outcome | None = None
    processed: int | None = None  # set when the job ends
    writing: bool = False
    pending: asyncio.Future[Any] | None = None
    stop_requested: bool = False

    @property
    def expires_at(self) -> float:
        return self.submitted_at + self.timeout_hours * 3600

    def describe(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model_id,
            "roleArn": self.role_arn,
            "status": self.status,
            "submitTime": _timestamp(self.submitted_at),
            "lastModifiedTime": _timestamp(self.modified_at),
            "inputDataConfig": self.input_config,
            "outputDataConfig": self.output_config,
            "timeoutDurationInHours": self.timeout_hours,
            "jobExpirationTime": _timestamp(self.expires_at),
        }
        if self.token is not None:
            summary["clientRequestToken"] = self.token
        if self.message is not None:
            summary["message"] = self.message
        if self.ended_at is not None:
            summary["endTime"] = _timestamp(self.ended_at)
        if self.vpc is not None:
            summary["vpcConfig"] = self.vpc
        if self.invocation_type is not None:
            summary["modelInvocationType"] = self.invocation_type
        if self.total is not None:
            summary["totalRecordCount"] = self.total
            outcome = self.outcome
            processed = self.processed if self.processed is not None else 0
            summary["processedRecordCount"] = processed
            if outcome is not None and self.processed is not None:
                summary["successRecordCount"] = outcome.success
                summary["errorRecordCount"] = outcome.errors
            else:
                summary["successRecordCount"] = 0
                summary["errorRecordCount"] = 0
        return summary


class BatchJobs:
    """The account's batch inference jobs in this region. Runs on the emulator's event-loop thread."""

    def __init__(
        self, state: EmulatorState, settings: BatchSettings, region: str, account_id: str, seed: int
    ):
        self._state = state
        self._initial = settings
        self.settings = settings
        self._region = region
        self._account = account_id
        self._seed = seed
        self._catalogue: Catalogue = state.catalogue
        self._partition = self._catalogue.partition
        self.jobs: dict[str, Job] = {}
        self._tokens: dict[str, str] = {}
        self._seq = itertools.count()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="batch-job")
        self._timer: asyncio.TimerHandle | None = None
        # Seconds the jobs' clock runs ahead of the emulator's (which SigV4 checks too): tests move
        # jobs through hours of phases without expiring their own signatures.
        self._offset = 0.0

    def now(self) -> float:
        """The jobs' clock: the emulator's, plus whatever ``PUT /_emulator/batch`` advanced it by."""
        return self._state.now() + self._offset

    # -- the wire API ------------------------------------------------------------------------------

    def handle(self, operation: str, identifier: str | None, query: str, body: bytes) -> dict[str, Any]:
        if operation == "CreateModelInvocationJob":
            return self.create(_json_body(body))
        self.advance()
        if operation == "GetModelInvocationJob":
            return self._job(identifier or "").describe()
        if operation == "StopModelInvocationJob":
            return self.stop(identifier or "")
        return self.list(dict(parse_qsl(query, keep_blank_values=True)))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("clientRequestToken")
        if token is not None:
            _check(token, TOKEN, "clientRequestToken", 1, 256)
            known = self._tokens.get(token)
            if known is not None:
                job = self.jobs[known]
                if job.request != _request_members(body):
                    raise BedrockError("ConflictException", MSG_TOKEN_REUSED)
                return {"jobArn": job.arn}
        name = _required(body, "jobName")
        _check(name, JOB_NAME, "jobName", 1, 63)
        role_arn = _required(body, "roleArn")
        _check(role_arn, ROLE_ARN, "roleArn", 0, 2048)
        role_account = role_arn.split(":")[4]
        if role_arn.split(":")[1] != self._partition or role_account not in ("", self._account):
            raise validation(MSG_ROLE_ACCOUNT)
        model_id = _required(body, "modelId")
        resolved = self._catalogue.resolve_for_invocation(model_id)
        if resolved.model.model_id not in BATCH_MODELS:
            raise validation(MSG_MODEL_UNSUPPORTED)
        input_config = _s3_config(body.get("inputDataConfig"), "inputDataConfig", "s3InputDataConfig")
        output_config = _s3_config(body.get("outputDataConfig"), "outputDataConfig", "s3OutputDataConfig")
        input_s3 = input_config["s3InputDataConfig"]
        input_format = input_s3.get("s3InputFormat")
        if input_format is not None and input_format != "JSONL":
            raise coral_constraint(
                input_format,
                "inputDataConfig.s3InputDataConfig.s3InputFormat",
                "Member must satisfy enum value set: [JSONL]",
            )
        kms_key = output_config["s3OutputDataConfig"].get("s3EncryptionKeyId")
        if kms_key is not None:
            _check(kms_key, KMS_KEY, "outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId", 1, 2048)
        timeout = body.get("timeoutDurationInHours", 24)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 24 <= timeout <= 168:
            raise coral_constraint(
                timeout, "timeoutDurationInHours", "Member must have value between 24 and 168"
            )
        invocation_type = body.get("modelInvocationType")
        if invocation_type is not None and invocation_type not in ("InvokeModel", "Converse"):
            raise coral_constraint(
                invocation_type,
                "modelInvocationType",
                "Member must satisfy enum value set: [InvokeModel, Converse]",
            )
        vpc = body.get("vpcConfig")
        now = self.now()
        job_id = "".join(secrets.choice(JOB_ID_ALPHABET) for _ in range(12))
        job = Job(
            job_id=job_id,
            arn=f"arn:{self._partition}:bedrock:{self._region}:{self._account}:model-invocation-job/{job_id}",
            name=name,
            model_id=model_id,
            model=resolved.model,
            invoked_id=resolved.invoked_id,
            role_arn=role_arn,
            token=token,
            request=_request_members(body),
            input_config=input_config,
            output_config=output_config,
            invocation_type=invocation_type,
            timeout_hours=timeout,
            vpc=vpc if isinstance(vpc, dict) else None,
            submitted_at=now,
            seq=next(self._seq),
            phase_started=now,
            modified_at=now,
        )
        self.jobs[job_id] = job
        if token is not None:
            self._tokens[token] = job_id
        self._schedule()
        return {"jobArn": job.arn}

    def stop(self, identifier: str) -> dict[str, Any]:
        job = self._job(identifier)
        if job.status not in STOPPABLE:
            raise BedrockError("ConflictException", MSG_NOT_STOPPABLE.format(job=job.arn, status=job.status))
        job.stop_requested = True
        self._enter(job, "Stopping", self.now())
        self.advance()
        return {}

    def list(self, query: dict[str, str]) -> dict[str, Any]:
        jobs = sorted(self.jobs.values(), key=lambda j: (j.submitted_at, j.seq))
        status = query.get("statusEquals")
        if status is not None:
            if status not in STATUSES:
                raise coral_constraint(
                    status, "statusEquals", f"Member must satisfy enum value set: [{', '.join(STATUSES)}]"
                )
            jobs = [j for j in jobs if j.status == status]
        name = query.get("nameContains")
        if name is not None:
            jobs = [j for j in jobs if name in j.name]
        after = query.get("submitTimeAfter")
        if after is not None:
            moment = _parse_timestamp(after, "submitTimeAfter")
            jobs = [j for j in jobs if j.submitted_at > moment]
        before = query.get("submitTimeBefore")
        if before is not None:
            moment = _parse_timestamp(before, "submitTimeBefore")
            jobs = [j for j in jobs if j.submitted_at < moment]
        sort_by = query.get("sortBy", "CreationTime")
        if sort_by != "CreationTime":
            raise coral_constraint(sort_by, "sortBy", "Member must satisfy enum value set: [CreationTime]")
        order = query.get("sortOrder", "Descending")
        if order not in ("Ascending", "Descending"):
            raise coral_constraint(
                order, "sortOrder", "Member must satisfy enum value set: [Ascending, Descending]"
            )
        if order == "Descending":
            jobs.reverse()
        try:
            max_results = int(query.get("maxResults", "1000"))
        except ValueError:
            raise coral_constraint(
                query.get("maxResults"), "maxResults", "Member must be an integer"
            ) from None
        if not 1 <= max_results <= 1000:
            raise coral_constraint(max_results, "maxResults", "Member must have value between 1 and 1000")
        start = decode_page_token(query["nextToken"]) if "nextToken" in query else 0
        page = jobs[start : start + max_results]
        result: dict[str, Any] = {"invocationJobSummaries": [j.describe() for j in page]}
        if start + max_results < len(jobs):
            result["nextToken"] = encode_page_token(start + max_results)
        return result

    def _job(self, identifier: str) -> Job:
        if not JOB_IDENTIFIER.fullmatch(identifier) or len(identifier) > 1011:
            raise coral_constraint(
                identifier,
                "jobIdentifier",
                f"Member must satisfy regular expression pattern: {JOB_IDENTIFIER.pattern}",
            )
        job = self.jobs.get(identifier.rsplit("/", 1)[-1])
        if job is None or (identifier.startswith("arn:") and identifier != job.arn):
            raise BedrockError("ResourceNotFoundException", MSG_JOB_NOT_FOUND.format(job=identifier))
        return job

    # -- progress on the emulator's clock ------------------------------------------------------------

    def advance(self) -> None:
        """Move every job as far as the emulator's clock and its finished I/O allow."""
        now = self.now()
        for job in list(self.jobs.values()):
            while job.status not in TERMINAL and self._step(job, now):
                pass
        self._schedule()

    def _phase_seconds(self) -> float:
        return max(0.0, self.settings.phase_seconds)

    def _step(self, job: Job, now: float) -> bool:
        """One transition if one is due; False when the job must wait (time or I/O)."""
        if job.pending is not None and not job.pending.done():
            return False
        crash = job.pending.result() if job.pending is not None else None
        if isinstance(crash, Crash) or job.status == "Stopping":
            job.pending = None
            job.writing = False
            if isinstance(crash, Crash):
                self._finish(job, "Failed", now, MSG_INTERNAL.format(detail=crash.detail))
            else:
                self._finish(job, "Stopped", now)
            return True
        if job.status == "InProgress":
            return self._progress(job, now)
        if job.status == "Scheduled" and now >= job.expires_at:
            self._finish(job, "Expired", now)
            return True
        if now < job.phase_started + self._phase_seconds():
            return False
        if job.status == "Submitted":
            self._enter(job, "Validating", now)
            job.pending = self._run(
                read_input,
                self.settings,
                job.role_arn,
                job.input_config["s3InputDataConfig"]["s3Uri"],
                job.input_config["s3InputDataConfig"].get("s3BucketOwner"),
            )
        elif job.status == "Validating":
            self._validated(job, now)
        else:  # Scheduled
            self._start(job, now)
        return True

    def _validated(self, job: Job, now: float) -> None:
        result = job.pending.result() if job.pending is not None else "the input was not read"
        job.pending = None
        if isinstance(result, str):
            self._finish(job, "Failed", now, result)
            return
        total = sum(len(f.records) for f in result)
        settings = self.settings
        if total < settings.min_records_per_job:
            self._finish(
                job, "Failed", now, MSG_TOO_FEW.format(count=total, minimum=settings.min_records_per_job)
            )
            return
        if total > settings.max_records_per_job:
            self._finish(
                job, "Failed", now, MSG_TOO_MANY.format(count=total, maximum=settings.max_records_per_job)
            )
            return
        job.files = result
        job.total = total
        self._enter(job, "Scheduled", now)

    def _start(self, job: Job, now: float) -> None:
        """InProgress: each record's fault drawn here (the fault rules live on this thread), the
        inference itself on a worker."""
        self._enter(job, "InProgress", now)
        files = job.files or []
        models = (job.model.model_id, job.invoked_id)
        faults = [
            self._state.faults.take(models, BATCH_RECORD_OPERATION, "request")
            for input_file in files
            for _ in input_file.records
        ]
        self._state.counters.call(BATCH_RECORD_OPERATION)
        job.pending = self._run(
            functools.partial(
                infer,
                model=job.model,
                invocation_type=job.invocation_type or "InvokeModel",
                files=files,
                faults=faults,
                seed=self._seed,
                job_id=job.job_id,
            )
        )

    def _finish_time(self, job: Job) -> float:
        rate = self.settings.records_per_second
        pacing = (job.total or 0) / rate if rate else 0.0
        return job.phase_started + self._phase_seconds() + pacing

    def _progress(self, job: Job, now: float) -> bool:
        if job.writing:
            error = job.pending.result() if job.pending is not None else None
            job.pending = None
            job.writing = False
            if error is not None:
                self._finish(job, "Failed", now, error)
            else:
                partial = (job.processed or 0) < (job.total or 0)
                self._finish(job, "PartiallyCompleted" if partial else "Completed", now)
            return True
        outcome: Outcome = job.pending.result() if job.pending is not None else Outcome()
        finish = self._finish_time(job)
        if now < finish and now < job.expires_at:
            job.outcome = outcome
            return False
        job.pending = None
        job.outcome = outcome
        total = job.total or 0
        processed = total
        if job.expires_at < finish:  # timed out part-way: records progress evenly through InProgress
            share = max(0.0, job.expires_at - job.phase_started) / (finish - job.phase_started)
            processed = min(total, math.floor(total * share))
            outcome = _truncated(outcome, processed)
            job.outcome = outcome
        job.processed = processed
        manifest = {
            "totalRecordCount": total,
            "processedRecordCount": processed,
            "successRecordCount": outcome.success,
            "errorRecordCount": outcome.errors,
            "inputTokenCount": outcome.input_tokens,
            "outputTokenCount": outcome.output_tokens,
        }
        output = job.output_config["s3OutputDataConfig"]
        job.writing = True
        job.pending = self._run(
            functools.partial(
                write_output,
                settings=self.settings,
                role_arn=job.role_arn,
                uri=output["s3Uri"],
                bucket_owner=output.get("s3BucketOwner"),
                kms_key=output.get("s3EncryptionKeyId"),
                job_id=job.job_id,
                lines=outcome.lines,
                manifest=manifest,
            )
        )
        return True

    def _enter(self, job: Job, status: str, now: float) -> None:
        job.status = status
        job.phase_started = now
        job.modified_at = now

    def _finish(self, job: Job, status: str, now: float, message: str | None = None) -> None:
        self._enter(job, status, now)
        job.ended_at = now
        job.message = message
        job.files = None  # the input is not kept once the job has ended
        if job.processed is None and job.total is not None:
            job.processed = 0
        logger.info("batch job %s %s%s", job.job_id, status, f": {message}" if message else "")

    def _run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, _guarded, function, *args)
        future.add_done_callback(lambda _: self.advance())
        return future

    def _schedule(self) -> None:
        """Wake up when the next job's phase is due (I/O completions wake it up on their own)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self.now()
        deadlines = [
            j.phase_started + self._phase_seconds()
            for j in self.jobs.values()
            if j.status not in TERMINAL and (j.pending is None or j.pending.done())
        ]
        deadlines += [
            min(self._finish_time(j), j.expires_at)
            for j in self.jobs.values()
            if j.status == "InProgress" and not j.writing
        ]
        if not deadlines:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.0, min(deadlines) - now) + 0.001, self.advance)

    # -- control -------------------------------------------------------------------------------------

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        advance = body.get("advance_seconds")
        if advance is not None:
            if isinstance(advance, bool) or not isinstance(advance, int | float) or advance < 0:
                raise ValueError("advance_seconds must be a non-negative number")
            self._offset += float(advance)
        for name in ("phase_seconds", "records_per_second"):
            if name in body:
                value = body[name]
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float) or value < 0
                ):
                    raise ValueError(f"{name} must be a non-negative number")
                if name == "phase_seconds" and value is None:
                    raise ValueError("phase_seconds must be a non-negative number")
                changes[name] = float(value) if value is not None else None
        for name in (
            "min_records_per_job",
            "max_records_per_job",
            "max_records_per_file",
            "max_file_bytes",
            "max_job_bytes",
        ):
            if name in body:
                value = body[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be a non-negative integer")
                changes[name] = value
        if changes:
            self.settings = _replace(self.settings, changes)
        if changes or advance:
            self.advance()
        return self.describe()

    def reset(self) -> dict[str, Any]:
        self.jobs.clear()
        self._tokens.clear()
        self.settings = self._initial
        self._offset = 0.0
        self._schedule()
        return self.describe()

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "clock_ahead_seconds": self._offset,
            "phase_seconds": s.phase_seconds,
            "records_per_second": s.records_per_second,
            "min_records_per_job": s.min_records_per_job,
            "max_records_per_job": s.max_records_per_job,
            "max_records_per_file": s.max_records_per_file,
            "max_file_bytes": s.max_file_bytes,
            "max_job_bytes": s.max_job_bytes,
            "s3_endpoint_url": s.s3_endpoint_url,
            "roles": sorted(s.role_credentials),
            "jobs": {j.job_id: j.status for j in self.jobs.values()},
        }


@dataclass(frozen=True)
class Crash:
    """A worker's unexpected exception, which fails the job (and is logged) instead of the request."""

    detail: str


def _guarded(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as error:  # a bug or an unforeseen S3 answer: the job fails, the emulator lives
        logger.exception("batch job work failed")
        return Crash(f"{type(error).__name__}: {error}")


def _replace(settings: BatchSettings, changes: dict[str, Any]) -> BatchSettings:
    return dataclasses.replace(settings, **changes)


def _truncated(outcome: Outcome, processed: int) -> Outcome:
    """The first ``processed`` records' lines and counts (a job that timed out part-way)."""
    kept = Outcome()
    remaining = processed
    for name, lines in outcome.lines.items():
        part = lines[:remaining]
        remaining -= len(part)
        kept.lines[name] = part
        for line in part:
            entry = json.loads(line)
            if "error" in entry:
                kept.errors += 1
            else:
                kept.success += 1
    # Token counts are the whole job's when nothing was cut; otherwise prorated.
    share = processed / max(1, outcome.success + outcome.errors)
    kept.input_tokens = round(outcome.input_tokens * share)
    kept.output_tokens = round(outcome.output_tokens * share)
    return kept


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BedrockError(
            "SerializationException", "Start of structure or map found where not expected."
        ) from None
    if not isinstance(value, dict):
        raise BedrockError("SerializationException", "Start of structure or map found where not expected.")
    return value


def _request_members(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "clientRequestToken"}


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise coral_constraint(None, name, "Member must not be null")
    return value


def _check(value: Any, pattern: re.Pattern[str], where: str, minimum: int, maximum: int) -> None:
    if not isinstance(value, str):
        raise coral_constraint(value, where, "Member must be a string")
    if not minimum <= len(value) <= maximum:
        raise coral_constraint(value, where, f"Member must have length between {minimum} and {maximum}")
    if not pattern.fullmatch(value):
        raise coral_constraint(
            value, where, f"Member must satisfy regular expression pattern: {pattern.pattern}"
        )


def _s3_config(value: Any, where: str, member: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get(member), dict):
        raise coral_constraint(None, f"{where}.{member}", "Member must not be null")
    config = value[member]
    _check(config.get("s3Uri"), S3_URI, f"{where}.{member}.s3Uri", 1, 1024)
    owner = config.get("s3BucketOwner")
    if owner is not None and (not isinstance(owner, str) or not ACCOUNT.fullmatch(owner)):
        raise coral_constraint(
            owner,
            f"{where}.{member}.s3BucketOwner",
            "Member must satisfy regular expression pattern: [0-9]{12}",
        )
    return {member: dict(config)}
