"""A backlog through the queue at a binding Bedrock quota, paced (the shared bucket) beside unpaced, in
one run: how close xpi sustains the quota, and what it costs in throttles and failed requests.

The emulator answers each call in 1 s and enforces the quota (requests and tokens per minute, token
buckets holding one minute). Both runs send the same backlog (most prompts short, one in five long, so
the token quota binds for part of it) to a fresh local stack: paced at the same quota (template
parameters), then with pacing off (throttles, and the workflow's retries with backoff).

Sustained rate: the successful Bedrock calls (from the result events' `invoked_at`) from one minute
after the backlog was sent (the emulator's full one-minute buckets at the start would flatter the
unpaced run) to the last call, and to the call that completed 90 % of the backlog (the tail, the last
few requests waiting out the workflow's retry backoff, left out), per minute, beside the quota; tokens
likewise from the events' usage.
Nothing lost: every request has exactly one result event.
"""

import json
import sys
import threading
import time
from collections import Counter
from datetime import datetime

from _stack import StackDriver, start_stack
from xpi_tools.emulator import EmulatorControl
from xpi_tools.local.stack import LocalStack

MODEL = "us.amazon.nova-lite-v1:0"
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
REQUESTS = int(ARGS[0]) if ARGS else 240
PACED_ONLY = "--paced-only" in sys.argv  # the goal's column alone, in half the time
RPM = 60
TPM = 15_000
LATENCY_MS = 1000
RUNTIMES = 4
SKIP_S = 60.0
SHORT = "Summarise the benefits of lineage in one paragraph."
LONG = "Lineage records who asked what, when, and what came back. " * 70  # about 1,000 tokens


class CountingDriver(StackDriver):
    """Counts every result event per request, with the invoke step's time and the tokens used."""

    def __init__(self, stack: LocalStack) -> None:
        self.events: Counter[str] = Counter()
        self.invoked: dict[str, tuple[float, int]] = {}
        super().__init__(stack)

    def _collect(self) -> None:
        queue_url = self.endpoints.outputs["SubscriberQueueUrl"]
        while not self._stop.is_set():
            response = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            now = time.perf_counter()
            entries = []
            for message in response.get("Messages", []):
                event = json.loads(message["Body"])
                detail = event["detail"]
                request_id = detail["request_id"]
                with self._lock:
                    self.events[request_id] += 1
                    self.done_at.setdefault(request_id, now)
                    self.status[request_id] = event["detail-type"]
                    invoked_at = detail.get("timings", {}).get("invoked_at")
                    if detail.get("status") == "COMPLETED" and invoked_at:
                        usage = detail.get("usage") or {}
                        self.invoked[request_id] = (
                            datetime.fromisoformat(invoked_at).timestamp(),
                            int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0)),
                        )
                entries.append({"Id": str(len(entries)), "ReceiptHandle": message["ReceiptHandle"]})
            if entries:
                self.sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)

    def send_backlog(self, count: int) -> list[str]:
        ids: list[str] = []
        for start in range(0, count, 10):
            batch = [f"quota-{start + i:05d}-{time.time_ns() % 10**9}" for i in range(min(10, count - start))]
            now = time.perf_counter()
            for request_id in batch:
                self.sent_at[request_id] = now
            self.sqs.send_message_batch(
                QueueUrl=self.endpoints.outputs["RequestsQueueUrl"],
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": json.dumps(
                            {
                                "request_id": request_id,
                                "model": "default",
                                "prompt": LONG if (start + i) % 5 == 4 else SHORT,
                                "inference": {"max_tokens": 150},
                            }
                        ),
                    }
                    for i, request_id in enumerate(batch)
                ],
            )
            ids.extend(batch)
        return ids


def rate(calls: list[tuple[float, int]], start: float, end: float) -> tuple[float, float]:
    """Calls and tokens per minute between the first call at or after start and the last up to end."""
    window = [(t, tokens) for t, tokens in calls if start <= t <= end]
    if len(window) < 2:
        return 0.0, 0.0
    span = window[-1][0] - window[0][0]
    return (len(window) - 1) / span * 60, sum(tokens for _, tokens in window[1:]) / span * 60


def run(paced: bool) -> dict[str, float]:
    quota = {"BedrockRequestsPerMinute": str(RPM), "BedrockTokensPerMinute": str(TPM)}
    stack = start_stack(
        parameters=quota if paced else {"BedrockRequestsPerMinute": "0", "BedrockTokensPerMinute": "0"},
        poller_concurrency=2,
        # A call waiting for the bucket holds its runtime: two (the default) leave none free to take
        # what the bucket has while both wait, and that, not the quota, caps a backlog.
        runtimes_per_function=RUNTIMES,
    )
    assert stack.endpoints is not None
    emulator = EmulatorControl(stack.endpoints.emulator_control)
    driver = CountingDriver(stack)
    try:
        emulator.set_latency(time_to_first_token_ms=LATENCY_MS)
        emulator.set_quota(MODEL, requests_per_minute=RPM, tokens_per_minute=TPM)
        before = emulator.counters().model(MODEL)
        sent_at = time.time()
        ids = driver.send_backlog(REQUESTS)
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline and not all(i in driver.done_at for i in ids):
            time.sleep(0.5)
        threading.Event().wait(5)  # a late second event would arrive by now
        after = emulator.counters().model(MODEL)
    finally:
        driver.close()
        stack.stop()
    calls = sorted(driver.invoked[i] for i in ids if i in driver.invoked)
    # Two windows from a minute after sending: to the last call, and to the call that completed nine
    # tenths of the backlog (the tail, a few requests left in the workflow's retry backoff, excluded).
    last = calls[-1][0] if calls else 0.0
    ninety = calls[int(0.9 * (len(calls) - 1))][0] if calls else 0.0
    full, steady = rate(calls, sent_at + SKIP_S, last), rate(calls, sent_at + SKIP_S, ninety)
    return {
        "sent": len(ids),
        "exactly_one": sum(1 for i in ids if driver.events[i] == 1),
        "lost": sum(1 for i in ids if driver.events[i] == 0),
        "doubled": sum(1 for i in ids if driver.events[i] > 1),
        "completed": sum(1 for i in ids if driver.status.get(i) == "Inference Completed"),
        "failed": sum(1 for i in ids if driver.status.get(i) == "Inference Failed"),
        "rpm": full[0],
        "tpm": full[1],
        "rpm90": steady[0],
        "tpm90": steady[1],
        "bedrock_calls": after.calls - before.calls,
        "throttles": after.throttles - before.throttles,
        "drain_s": (max(calls)[0] - sent_at) if calls else float("nan"),
    }


def main() -> None:
    paced = run(paced=True)
    unpaced = paced if PACED_ONLY else run(paced=False)
    print(
        f"{REQUESTS} requests through the queue; quota {RPM} RPM and {TPM} TPM, model latency "
        f"{LATENCY_MS} ms, {RUNTIMES} runtimes per function; sustained rate from {SKIP_S:.0f} s after "
        "sending to the last call"
    )
    print(f"{'':32}{'paced':>12}{'(paced)' if PACED_ONLY else 'unpaced':>12}")
    rows = [
        ("to the last call: calls/min", "rpm", "{:12.1f}"),
        ("  % of the RPM quota", "rpm", "%"),
        ("  tokens/min", "tpm", "{:12.0f}"),
        ("  % of the TPM quota", "tpm", "%"),
        ("to the 90 % call: calls/min", "rpm90", "{:12.1f}"),
        ("  % of the RPM quota", "rpm90", "%"),
        ("  tokens/min", "tpm90", "{:12.0f}"),
        ("  % of the TPM quota", "tpm90", "%"),
        ("Bedrock calls (incl. throttled)", "bedrock_calls", "{:12.0f}"),
        ("throttled by Bedrock", "throttles", "{:12.0f}"),
        ("completed", "completed", "{:12.0f}"),
        ("failed", "failed", "{:12.0f}"),
        ("exactly one event", "exactly_one", "{:12.0f}"),
        ("lost", "lost", "{:12.0f}"),
        ("doubled", "doubled", "{:12.0f}"),
        ("backlog drained in (s)", "drain_s", "{:12.0f}"),
    ]
    for label, key, fmt in rows:
        if fmt == "%":
            quota = RPM if "RPM" in label else TPM
            cells = "".join(f"{100 * r[key] / quota:11.0f}%" for r in (paced, unpaced))
        else:
            cells = "".join(fmt.format(r[key]) for r in (paced, unpaced))
        print(f"{label:32}{cells}")
    for window, (requests, tokens) in (("last", ("rpm", "tpm")), ("90 %", ("rpm90", "tpm90"))):
        binding = max(paced[requests] / RPM, paced[tokens] / TPM)
        print(f"paced, to the {window} call: {100 * binding:.0f} % of the binding quota (goal >= 90 %)")


if __name__ == "__main__":
    main()
