"""`xpi compare --prompts FILE --models A,B,...`: the same prompts through chosen GovCloud-native and
commercial models, each through the full gate (POST /v1/invoke: validation, classification, policy,
routing, Bedrock, lineage), and per model: answers, errors, latency (the caller's round trip), tokens,
cost (the gate's own estimate) and a quality score, as a table or JSON (--json).

The prompts file is JSON lines (or one JSON array): `{"id": ..., "prompt": ..., "expected": ...}`;
`expected` is optional. The score is reference-based: the token F1 of the answer against `expected`
(words, case-insensitive), averaged over the prompts that have one. A model name is sent as the request's
model (an alias or an approved id), so routing and the partition policy apply as to any caller.

The stack is the running local stack's (its state file; signed as its API caller), or --api URL signed
with the caller's own AWS credentials (which need the API caller policy).
"""

import argparse
import json
import re
import statistics
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

DEFAULT_STATE_FILE = Path(".xpi/local/stack.json")
INVOKE = "/v1/invoke"

# (status, answer) of one POST /v1/invoke, and how long it took in ms
Invoke = Callable[[dict[str, Any]], tuple[int, dict[str, Any], float]]


@dataclass(frozen=True)
class Prompt:
    id: str
    prompt: str
    expected: str | None = None


@dataclass(frozen=True)
class Outcome:
    prompt_id: str
    model: str
    status: str  # COMPLETED, BLOCKED, FAILED, or HTTP <code>
    resolved: str | None
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    error: str | None
    score: float | None


@dataclass(frozen=True)
class ModelSummary:
    model: str
    requests: int
    completed: int
    errors: int
    p50_latency_ms: float
    mean_latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    score: float | None  # mean over the prompts with an expected answer; None: none had one


def load_prompts(path: Path) -> list[Prompt]:
    text = path.read_text(encoding="utf-8").strip()
    rows = (
        json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
    )
    return [
        Prompt(str(row.get("id", i)), str(row["prompt"]), row.get("expected")) for i, row in enumerate(rows)
    ]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def reference_score(answer: str, expected: str) -> float:
    """Token F1 of `answer` against `expected` (0 to 1)."""
    got, want = _words(answer), _words(expected)
    if not got or not want:
        return float(got == want)
    common = sum(min(got.count(w), want.count(w)) for w in set(want))
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return round(2 * precision * recall / (precision + recall), 4)


def run(prompts: Sequence[Prompt], models: Sequence[str], invoke: Invoke) -> list[Outcome]:
    """Every prompt through every model, one request each."""
    outcomes = []
    for prompt in prompts:
        for model in models:
            body = {"request_id": f"cmp-{uuid.uuid4().hex[:16]}", "model": model, "prompt": prompt.prompt}
            status, answer, latency_ms = invoke(body)
            outcomes.append(_outcome(prompt, model, status, answer, latency_ms))
    return outcomes


def _outcome(prompt: Prompt, model: str, status: int, answer: dict[str, Any], latency_ms: float) -> Outcome:
    if status != 200:
        error = (answer.get("error") or {}).get("code") if isinstance(answer, dict) else None
        return Outcome(prompt.id, model, f"HTTP {status}", None, latency_ms, 0, 0, 0.0, error or "", None)
    usage = answer.get("usage") or {}
    text = (answer.get("output") or {}).get("text")
    completed = answer.get("status") == "COMPLETED"
    score = (
        reference_score(text or "", prompt.expected) if prompt.expected is not None and completed else None
    )
    if prompt.expected is not None and not completed:
        score = 0.0  # no answer scores nothing
    return Outcome(
        prompt_id=prompt.id,
        model=model,
        status=str(answer.get("status")),
        resolved=(answer.get("model") or {}).get("resolved"),
        latency_ms=round(latency_ms, 1),
        input_tokens=int(usage.get("input_tokens", 0)),
        output_tokens=int(usage.get("output_tokens", 0)),
        cost_usd=float(usage.get("estimated_cost_usd", 0.0)),
        error=(answer.get("error") or {}).get("code"),
        score=score,
    )


def summarise(outcomes: Sequence[Outcome], models: Sequence[str]) -> list[ModelSummary]:
    summaries = []
    for model in models:
        mine = [o for o in outcomes if o.model == model]
        latencies = [o.latency_ms for o in mine] or [0.0]
        scores = [o.score for o in mine if o.score is not None]
        summaries.append(
            ModelSummary(
                model=model,
                requests=len(mine),
                completed=sum(o.status == "COMPLETED" for o in mine),
                errors=sum(o.status != "COMPLETED" for o in mine),
                p50_latency_ms=round(statistics.median(latencies), 1),
                mean_latency_ms=round(statistics.fmean(latencies), 1),
                input_tokens=sum(o.input_tokens for o in mine),
                output_tokens=sum(o.output_tokens for o in mine),
                cost_usd=round(sum(o.cost_usd for o in mine), 8),
                score=round(statistics.fmean(scores), 4) if scores else None,
            )
        )
    return summaries


def table(summaries: Sequence[ModelSummary]) -> str:
    header = [
        "model",
        "requests",
        "completed",
        "errors",
        "p50 ms",
        "mean ms",
        "tokens in",
        "tokens out",
        "cost $",
        "score",
    ]
    rows = [
        [
            s.model,
            str(s.requests),
            str(s.completed),
            str(s.errors),
            f"{s.p50_latency_ms:.1f}",
            f"{s.mean_latency_ms:.1f}",
            str(s.input_tokens),
            str(s.output_tokens),
            f"{s.cost_usd:.6f}",
            "-" if s.score is None else f"{s.score:.3f}",
        ]
        for s in summaries
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def signed_invoke(api_url: str, region: str, credentials: Credentials) -> Invoke:
    def invoke(body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        data = json.dumps(body).encode()
        request = AWSRequest(
            method="POST",
            url=api_url.rstrip("/") + INVOKE,
            data=data,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(credentials, "execute-api", region).add_auth(request)
        prepared = request.prepare()
        outgoing = urllib.request.Request(  # noqa: S310 - the stack's API URL
            prepared.url, data=data, method="POST", headers=dict(prepared.headers.items())
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(outgoing, timeout=60) as response:  # noqa: S310
                status, answer = response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            status, answer = error.code, json.loads(error.read() or b"{}")
        return status, answer, (time.perf_counter() - started) * 1000

    return invoke


def compare(prompts_file: Path, models: Sequence[str], invoke: Invoke, as_json: bool = False) -> str:
    """What `xpi compare` prints."""
    outcomes = run(load_prompts(prompts_file), models, invoke)
    summaries = summarise(outcomes, models)
    if as_json:
        return json.dumps(
            {"models": [asdict(s) for s in summaries], "requests": [asdict(o) for o in outcomes]}, indent=2
        )
    return table(summaries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpi compare", description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", required=True, type=Path, help="JSON lines: id, prompt, expected")
    parser.add_argument("--models", required=True, help="comma-separated models or aliases")
    parser.add_argument("--json", action="store_true", help="every request and the summary, as JSON")
    parser.add_argument("--api", help="the API's URL (signed with your AWS credentials)")
    parser.add_argument("--region", help="the API's region (with --api)")
    parser.add_argument("--state-file", default=str(DEFAULT_STATE_FILE))
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.api:
        session = boto3.Session(region_name=args.region)
        found = session.get_credentials()
        if found is None:
            raise SystemExit("xpi compare: no AWS credentials to sign with")
        frozen = found.get_frozen_credentials()
        invoke = signed_invoke(
            args.api,
            str(session.region_name),
            Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token),
        )
    else:
        state_file = Path(args.state_file)
        if not state_file.exists():
            raise SystemExit("xpi compare: give --api, or start the local stack (xpi local up)")
        state = json.loads(state_file.read_text(encoding="utf-8"))
        caller = state["api_credentials"]["caller2"]  # the local API's caller principal
        invoke = signed_invoke(
            state["api"],
            state["region"],
            Credentials(caller["aws_access_key_id"], caller["aws_secret_access_key"]),
        )
    print(compare(args.prompts, models, invoke, as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
