"""Shared by the benchmarks that drive the local stack: start it, send requests, time results."""

import json
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from xpi_tools.local.stack import LOCAL_CREDENTIALS, LocalStack

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values):8.1f} ms   p95 {percentile(values, 0.95):8.1f} ms   "
        f"max {max(values):8.1f} ms"
    )


class StackDriver:
    """A producer and a subscriber on a running local stack, timing each request end to end."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.endpoints is not None
        self.endpoints = stack.endpoints
        session = boto3.Session(
            region_name=stack.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        self.sqs = session.client("sqs", endpoint_url=stack.endpoints.aws)
        self.sent_at: dict[str, float] = {}
        self.done_at: dict[str, float] = {}
        self.status: dict[str, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        queue_url = self.endpoints.outputs["SubscriberQueueUrl"]
        while not self._stop.is_set():
            response = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            now = time.perf_counter()
            entries = []
            for message in response.get("Messages", []):
                event = json.loads(message["Body"])
                request_id = event["detail"].get("request_id")  # batch events and alerts have none
                with self._lock:
                    if request_id:
                        self.done_at.setdefault(request_id, now)
                        self.status[request_id] = event["detail-type"]
                entries.append({"Id": str(len(entries)), "ReceiptHandle": message["ReceiptHandle"]})
            if entries:
                self.sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)

    def send(
        self, count: int, prompt: str = "Summarise the benefits of lineage in one paragraph."
    ) -> list[str]:
        ids = [f"bench-{uuid.uuid4().hex[:16]}" for _ in range(count)]
        queue_url = self.endpoints.outputs["RequestsQueueUrl"]
        for start in range(0, count, 10):
            batch = ids[start : start + 10]
            now = time.perf_counter()
            for request_id in batch:
                self.sent_at[request_id] = now
            self.sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": json.dumps({"request_id": rid, "model": "default", "prompt": prompt}),
                    }
                    for i, rid in enumerate(batch)
                ],
            )
        return ids

    def wait(self, ids: list[str], timeout_s: float) -> list[float]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if all(i in self.done_at for i in ids):
                    break
            time.sleep(0.05)
        with self._lock:
            missing = [i for i in ids if i not in self.done_at]
            if missing:
                raise RuntimeError(
                    f"{len(missing)} of {len(ids)} requests got no result within {timeout_s} s"
                )
            return [(self.done_at[i] - self.sent_at[i]) * 1000 for i in ids]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def converse_directly(stack: LocalStack, calls: int, threads: int) -> tuple[list[float], float]:
    """The same kind of call, straight to the emulator with boto3 (the floor under the pipeline)."""
    assert stack.endpoints is not None
    # Read as the invoke function's role: the secret's policy lets no other principal read it.
    invoke_role = stack.endpoints.function_credentials["InvokeModelFunction"]
    secret = json.loads(
        boto3.Session(
            region_name=stack.region,
            aws_access_key_id=invoke_role["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=invoke_role["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=invoke_role["AWS_SESSION_TOKEN"],
        )
        .client("secretsmanager", endpoint_url=stack.endpoints.aws)
        .get_secret_value(SecretId=stack.endpoints.outputs["CommercialCredentialsSecretArn"])["SecretString"]
    )
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(count: int) -> None:
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=stack.endpoints.bedrock,  # type: ignore[union-attr]
            region_name=stack.endpoints.bedrock_region,  # type: ignore[union-attr]
            aws_access_key_id=secret["aws_access_key_id"],
            aws_secret_access_key=secret["aws_secret_access_key"],
        )
        for _ in range(count):
            started = time.perf_counter()
            client.converse(
                modelId="us.amazon.nova-lite-v1:0",
                messages=[
                    {
                        "role": "user",
                        "content": [{"text": "Summarise the benefits of lineage in one paragraph."}],
                    }
                ],
            )
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(calls // threads,)) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return latencies, time.perf_counter() - started


def start_stack(**kwargs: Any) -> LocalStack:
    stack = LocalStack(ROOT, **kwargs)
    stack.start()
    return stack
