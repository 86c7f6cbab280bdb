"""What caching saves: one workload with repeats and shared prefixes, through POST /v1/invoke on the local
stack, priced from the answers (each request's estimated cost, from the routing document's prices and
the price table's prompt-caching lines), without caching and with it.

The workload: a few long reference documents (the shared prefixes, each over the 1,024-token minimum of
a cache point), several questions about each, and every question asked more than once (the repeats), in
an interleaved order. Without caching each request goes to Bedrock in full. With caching each request
asks for the exact-match response cache (`cache.ttl_s`, temperature 0) and puts a Converse cache point
after its document: a repeat is answered from the response cache (no Bedrock call), a new question about
a document Bedrock has seen reads the document from Bedrock's prompt cache (the emulator models it: a
tenth of the input price for Claude). It prints the cost of both runs, the saving, and the latency of a
response-cache hit beside a Bedrock call.

    .venv/bin/python bench/bench_cache.py [--documents 3] [--questions 4] [--repeats 3]
"""

import argparse
import json
import statistics
import time
import urllib.request
import uuid
from typing import Any

from _stack import percentile, start_stack
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from xpi_tools.emulator.client import EmulatorControl

MODEL = "claude"  # us.anthropic.claude-3-7-sonnet: $3 in, $15 out, cache read $0.30, write $3.75 per M
CLAUSE = "Clause {n}: records of class {n} are kept for {n} years, then reviewed by the records officer. "


def document(index: int, nonce: str) -> str:
    """A reference document of about 1,700 tokens (the emulator counts four characters a token)."""
    return f"Records schedule {index} ({nonce}). " + "".join(CLAUSE.format(n=n + index) for n in range(70))


def workload(documents: int, questions: int, repeats: int) -> list[tuple[int, int]]:
    """(document, question) pairs: every question `repeats` times, interleaved as traffic would be."""
    return [(d, q) for _ in range(repeats) for q in range(questions) for d in range(documents)]


def body(doc: str, d: int, q: int, *, cached: bool) -> dict[str, Any]:
    question = f"Question {q} about schedule {d}: which clause covers class {q + d}?"
    system: list[Any] = [doc]
    request: dict[str, Any] = {
        "request_id": f"bench-cache-{uuid.uuid4().hex[:16]}",
        "model": MODEL,
        "system": system,
        "prompt": question,
        "inference": {"temperature": 0, "max_tokens": 200},
    }
    if cached:
        system.append({"cachePoint": {"type": "default"}})
        request["cache"] = {"ttl_s": 3600}
    return request


def invoke(endpoints: Any, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
    keys = endpoints.api_credentials["caller2"]
    signed = AWSRequest(
        method="POST",
        url=endpoints.api + "/v1/invoke",
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(
        Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"]), "execute-api", endpoints.region
    ).add_auth(signed)
    prepared = signed.prepare()
    outgoing = urllib.request.Request(
        prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers.items())
    )
    started = time.perf_counter()
    with urllib.request.urlopen(outgoing, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    elapsed = (time.perf_counter() - started) * 1000
    if answer.get("status") != "COMPLETED":
        raise RuntimeError(f"xpi answered {answer.get('status')}: {answer.get('error')}")
    return answer, elapsed


def run(endpoints: Any, pairs: list[tuple[int, int]], docs: list[str], *, cached: bool) -> dict[str, Any]:
    totals: dict[str, Any] = {"usd": 0.0, "saved": 0.0, "hits": [], "calls": [], "read": 0, "write": 0}
    for d, q in pairs:
        answer, elapsed = invoke(endpoints, body(docs[d], d, q, cached=cached))
        usage = answer["usage"]
        totals["usd"] += usage["estimated_cost_usd"]
        totals["read"] += usage.get("cache_read_input_tokens", 0)
        totals["write"] += usage.get("cache_write_input_tokens", 0)
        if usage.get("cache") == "hit":
            totals["saved"] += usage["saved_usd"]
            totals["hits"].append(elapsed)
        else:
            totals["calls"].append(elapsed)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=3)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    pairs = workload(options.documents, options.questions, options.repeats)
    stack = start_stack()
    try:
        endpoints = stack.endpoints
        assert endpoints is not None
        control = EmulatorControl(endpoints.emulator_control)
        control.set_latency("*")  # the emulator answers at once: the latencies are xpi's own
        nonce = uuid.uuid4().hex[:8]  # nothing of an earlier run is in either cache
        docs = [document(i, nonce) for i in range(options.documents)]
        invoke(endpoints, body(document(99, nonce), 99, 99, cached=False))  # warm the function up
        before = control.counters().model("us.anthropic.claude-3-7-sonnet-20250219-v1:0").calls
        plain = run(endpoints, pairs, docs, cached=False)
        middle = control.counters().model("us.anthropic.claude-3-7-sonnet-20250219-v1:0").calls
        cached = run(endpoints, pairs, docs, cached=True)
        after = control.counters().model("us.anthropic.claude-3-7-sonnet-20250219-v1:0").calls
    finally:
        stack.stop()
    saving = 1 - cached["usd"] / plain["usd"]
    print(
        f"workload: {len(pairs)} requests = {options.documents} shared documents (~1,700 tokens each) x "
        f"{options.questions} questions x {options.repeats} asks, model {MODEL}, POST /v1/invoke"
    )
    print(
        "| run | Bedrock calls | prompt-cache read / write tokens | response-cache hits | model cost (USD) |"
    )
    print("|---|---|---|---|---|")
    print(f"| without caching | {middle - before} | 0 / 0 | 0 | {plain['usd']:.6f} |")
    print(
        f"| with caching | {after - middle} | {cached['read']:,} / {cached['write']:,} | "
        f"{len(cached['hits'])} | {cached['usd']:.6f} |"
    )
    print(f"saved: {saving:.1%} (goal > 20 %); the hits alone saved ${cached['saved']:.6f}")
    hit, call = cached["hits"], plain["calls"]
    print(
        f"latency, client side: response-cache hit p50 {statistics.median(hit):.1f} ms, "
        f"p95 {percentile(hit, 0.95):.1f} ms; a Bedrock call (emulator answering at once) "
        f"p50 {statistics.median(call):.1f} ms, p95 {percentile(call, 0.95):.1f} ms"
    )


if __name__ == "__main__":
    main()
