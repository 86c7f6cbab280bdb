"""`xpi compare --prompts FILE --models A,B,...`: the same prompts through chosen GovCloud-native and
commercial models, each through the full gate (POST /v1/invoke: validation, classification, policy,
routing, Bedrock, lineage), and per model: answers, errors, latency (the caller's round trip), tokens,
cost (the gate's own estimate) and a quality score, as a table or JSON (--json; --output FILE saves it,
which the dashboard's compare view shows).

The prompts file is JSON lines (or one JSON array): `{"id": ..., "prompt": ..., "expected": ...}`;
`expected` is optional. The score is reference-based: the token F1 of the answer against `expected`
(words, case-insensitive), averaged over the prompts that have one. A model name is sent as the request's
model (an alias or an approved id), so routing and the partition policy apply as to any caller.

With --judge MODEL, every completed answer is also graded by that model: one more POST /v1/invoke per answer
(a request like any other: classified, routed, recorded in lineage and costed) with a short fixed grading
prompt asking for a single integer from 1 to 10. The reply's first number is the grade when it is an integer
from 1 to 10; anything else (no number, 0, 11, 7.5, a failed judge call) leaves the grade missing, never a
number. Per model: the mean grade and how many answers were graded.

The stack is the running local stack's (its state file; signed as its API caller), or --api URL signed
with the caller's own AWS credentials (which need the API caller policy).
"""

import argparse
import json
import math
import re
import statistics
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

DEFAULT_STATE_FILE = Path(".xpi/local/stack.json")
INVOKE = "/v1/invoke"
JUDGE_PROMPT = (
    "Grade the answer below to the question below. Reply with a single integer from 1 (wrong or useless) "
    "to 10 (correct and complete) and nothing else.\n\n"
    "Question:\n{prompt}\n\n{reference}Answer:\n{answer}\n\nGrade (1-10):"
)
JUDGE_REFERENCE = "Expected answer:\n{expected}\n\n"
_FIRST_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")

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
    judge_score: int | None = None  # 1-10; None: not judged, or no usable grade
    judge_cost_usd: float = 0.0  # what the judge's own request cost


@dataclass(frozen=True)
class ModelSummary:
    model: str
    requests: int
    completed: int
    errors: int
    p50_latency_ms: float
    p95_latency_ms: float
    mean_latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    score: float | None  # mean over the prompts with an expected answer; None: none had one
    judge_score: float | None = None  # mean judge grade over the graded answers; None: none graded
    judged: int = 0  # answers with a usable judge grade
    judge_cost_usd: float = 0.0  # the judge's requests, beside the compared ones' cost_usd


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


def judge_prompt(prompt: str, answer: str, expected: str | None = None) -> str:
    """The fixed grading prompt the judge model gets for one answer."""
    reference = JUDGE_REFERENCE.format(expected=expected) if expected is not None else ""
    return JUDGE_PROMPT.format(prompt=prompt, reference=reference, answer=answer)


def parse_grade(reply: str | None) -> int | None:
    """The judge's grade: the reply's first number when it is an integer from 1 to 10, else None."""
    found = _FIRST_NUMBER.search(reply or "")
    if found is None or not found.group().isdigit():
        return None  # no number, a sign or a fraction: not a grade
    grade = int(found.group())
    return grade if 1 <= grade <= 10 else None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def run(
    prompts: Sequence[Prompt], models: Sequence[str], invoke: Invoke, judge: str | None = None
) -> list[Outcome]:
    """Every prompt through every model, one request each; with a judge, one more request per answer."""
    outcomes = []
    for prompt in prompts:
        for model in models:
            body = {"request_id": f"cmp-{uuid.uuid4().hex[:16]}", "model": model, "prompt": prompt.prompt}
            status, answer, latency_ms = invoke(body)
            outcome = _outcome(prompt, model, status, answer, latency_ms)
            text = (answer.get("output") or {}).get("text") if isinstance(answer, dict) else None
            if judge is not None and outcome.status == "COMPLETED" and text:
                grade, cost = _judge(invoke, judge, prompt, str(text))
                outcome = replace(outcome, judge_score=grade, judge_cost_usd=cost)
            outcomes.append(outcome)
    return outcomes


def _judge(invoke: Invoke, judge: str, prompt: Prompt, answer: str) -> tuple[int | None, float]:
    body = {
        "request_id": f"cmp-judge-{uuid.uuid4().hex[:16]}",
        "model": judge,
        "prompt": judge_prompt(prompt.prompt, answer, prompt.expected),
    }
    status, reply, _ = invoke(body)
    if status != 200 or not isinstance(reply, dict):
        return None, 0.0
    cost = float((reply.get("usage") or {}).get("estimated_cost_usd", 0.0))
    if reply.get("status") != "COMPLETED":
        return None, cost
    return parse_grade((reply.get("output") or {}).get("text")), cost


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
        grades = [o.judge_score for o in mine if o.judge_score is not None]
        summaries.append(
            ModelSummary(
                model=model,
                requests=len(mine),
                completed=sum(o.status == "COMPLETED" for o in mine),
                errors=sum(o.status != "COMPLETED" for o in mine),
                p50_latency_ms=round(statistics.median(latencies), 1),
                p95_latency_ms=round(percentile(latencies, 95), 1),
                mean_latency_ms=round(statistics.fmean(latencies), 1),
                input_tokens=sum(o.input_tokens for o in mine),
                output_tokens=sum(o.output_tokens for o in mine),
                cost_usd=round(sum(o.cost_usd for o in mine), 8),
                score=round(statistics.fmean(scores), 4) if scores else None,
                judge_score=round(statistics.fmean(grades), 2) if grades else None,
                judged=len(grades),
                judge_cost_usd=round(sum(o.judge_cost_usd for o in mine), 8),
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
        "p95 ms",
        "mean ms",
        "tokens in",
        "tokens out",
        "cost $",
        "F1",
        "judge (graded)",
    ]
    rows = [
        [
            s.model,
            str(s.requests),
            str(s.completed),
            str(s.errors),
            f"{s.p50_latency_ms:.1f}",
            f"{s.p95_latency_ms:.1f}",
            f"{s.mean_latency_ms:.1f}",
            str(s.input_tokens),
            str(s.output_tokens),
            f"{s.cost_usd:.6f}",
            "-" if s.score is None else f"{s.score:.3f}",
            "-" if s.judge_score is None else f"{s.judge_score:.2f} ({s.judged})",
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


def comparison(
    prompts_file: Path, models: Sequence[str], invoke: Invoke, judge: str | None = None
) -> dict[str, Any]:
    """The whole comparison as `xpi compare --json` prints it (and the dashboard's compare view reads)."""
    outcomes = run(load_prompts(prompts_file), models, invoke, judge)
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "prompts": prompts_file.name,
        "judge": judge,
        "models": [asdict(s) for s in summarise(outcomes, models)],
        "requests": [asdict(o) for o in outcomes],
    }


def render_table(result: dict[str, Any]) -> str:
    return table([ModelSummary(**s) for s in result["models"]])


def save(result: dict[str, Any], output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return output


def compare(
    prompts_file: Path,
    models: Sequence[str],
    invoke: Invoke,
    *,
    as_json: bool = False,
    judge: str | None = None,
    output: Path | None = None,
) -> str:
    """What `xpi compare` prints; with `output`, the JSON is also saved there."""
    result = comparison(prompts_file, models, invoke, judge)
    if output is not None:
        save(result, output)
    return json.dumps(result, indent=2) if as_json else render_table(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpi compare", description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", required=True, type=Path, help="JSON lines: id, prompt, expected")
    parser.add_argument("--models", required=True, help="comma-separated models or aliases")
    parser.add_argument("--json", action="store_true", help="every request and the summary, as JSON")
    parser.add_argument("--judge", help="a model that grades every answer 1-10 (one more request each)")
    parser.add_argument("--output", type=Path, help="also save the JSON there (the dashboard's compare view)")
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
    print(compare(args.prompts, models, invoke, as_json=args.json, judge=args.judge, output=args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
