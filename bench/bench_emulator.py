"""How fast is the Bedrock emulator, and how much of that is the emulator itself?

Drives Converse (zero configured latency) with several client processes x threads against:

  * a bare loopback HTTP server that answers every request with a canned Converse response
    (no parsing, no authentication, no generation): the baseline, i.e. what the clients and the
    loopback stack alone cost;
  * the emulator (BedrockEmulator in its own process: SigV4 verification, routing, validation,
    quotas, generation, counters).

Each target is driven two ways: stock boto3 ``bedrock-runtime`` clients (what tests and the local
stack do), and raw keep-alive HTTP clients replaying one request signed by botocore's SigV4 signer
(light clients, so the server's own capacity shows). Prints calls/s and p50/p95/p99 per run.

    python bench/bench_emulator.py [--processes 3] [--threads 2] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

KEY_ID = "AKIABENCHMARK0000001"
SECRET = "bench-secret"
REGION = "us-east-1"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES: Any = [{"role": "user", "content": [{"text": "Summarise the benchmark in one paragraph."}]}]
CANNED = json.dumps(
    {
        "output": {"message": {"role": "assistant", "content": [{"text": "Canned answer. " * 12}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 11, "outputTokens": 45, "totalTokens": 56},
        "metrics": {"latencyMs": 0},
    }
).encode()


# -- servers (each in its own process) -----------------------------------------------------------


class _BareHttp(asyncio.Protocol):
    """Keep-alive HTTP/1.1 that answers every complete request with the canned response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            "x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n"
            f"Content-Length: {len(CANNED)}\r\nConnection: keep-alive\r\n\r\n"
        )
        self.response = head.encode() + CANNED

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(self.response)


def serve_baseline(conn: Connection) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_BareHttp, "127.0.0.1", 0, backlog=1024)
        conn.send(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        server.close()

    asyncio.run(main())


def serve_emulator(conn: Connection) -> None:
    from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig

    with BedrockEmulator(EmulatorConfig(access_keys=[AccessKey(KEY_ID, SECRET)])) as emulator:
        conn.send(emulator.url)
        conn.recv()
        totals = emulator.control.counters().totals
        conn.send({"calls": totals.calls, "errors": totals.errors})


# -- clients -------------------------------------------------------------------------------------


def _boto3_caller(url: str) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name=REGION
    )
    client = session.client(
        "bedrock-runtime", endpoint_url=url, config=Config(retries={"total_max_attempts": 1})
    )

    def call() -> bool:
        response = client.converse(modelId=MODEL, messages=MESSAGES)
        return bool(response["stopReason"])

    return call


def _raw_caller(url: str) -> Any:
    """A keep-alive connection replaying one request signed by botocore (valid for five minutes)."""
    from urllib.parse import urlsplit

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    path = f"/model/{MODEL.replace(':', '%3A')}/converse"
    body = json.dumps({"messages": MESSAGES}).encode()
    request = AWSRequest("POST", url + path, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(KEY_ID, SECRET), "bedrock", REGION).add_auth(request)
    headers = dict(request.prepare().headers.items())
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)

    def call() -> bool:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status == 200

    return call


def client_process(
    url: str, kind: str, threads: int, warmup: float, seconds: float, conn: Connection
) -> None:
    make = _boto3_caller if kind == "boto3" else _raw_caller
    callers = [make(url) for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    results: list[tuple[int, list[float]]] = [(0, []) for _ in range(threads)]

    def run(index: int) -> None:
        call = callers[index]
        errors = 0
        latencies: list[float] = []
        barrier.wait()
        measure_from = time.perf_counter() + warmup
        stop_at = measure_from + seconds
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                break
            try:
                ok = call()
            except Exception:
                ok = False
            if started >= measure_from:
                latencies.append(time.perf_counter() - started)
                errors += 0 if ok else 1
        results[index] = (errors, latencies)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    conn.send("ready")
    conn.recv()  # start signal, so that every process measures the same window
    barrier.wait()
    for worker in workers:
        worker.join()
    conn.send(results)


@dataclass
class Result:
    label: str
    calls: int
    errors: int
    seconds: float
    latencies: list[float]

    def row(self) -> str:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")

        return (
            f"{self.label:<40} {self.calls:>8} {self.calls / self.seconds:>10.0f} "
            f"{pct(0.50):>8.2f} {pct(0.95):>8.2f} {pct(0.99):>8.2f} {self.errors:>7}"
        )


def drive(ctx: Any, label: str, url: str, kind: str, args: argparse.Namespace) -> Result:
    pipes = []
    processes = []
    for _ in range(args.processes):
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=client_process, args=(url, kind, args.threads, args.warmup, args.seconds, child)
        )
        process.start()
        pipes.append(parent)
        processes.append(process)
    for pipe in pipes:
        pipe.recv()
    for pipe in pipes:
        pipe.send("go")
    calls = errors = 0
    latencies: list[float] = []
    for pipe in pipes:
        for thread_errors, thread_latencies in pipe.recv():
            errors += thread_errors
            calls += len(thread_latencies)
            latencies.extend(thread_latencies)
    for process in processes:
        process.join()
    return Result(label, calls, errors, args.seconds, latencies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=3, help="client processes per run")
    parser.add_argument("--threads", type=int, default=2, help="client threads per process")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each run")
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    started = time.perf_counter()

    servers: dict[str, tuple[Any, Connection]] = {}
    urls: dict[str, str] = {}
    for name, serve in (("baseline", serve_baseline), ("emulator", serve_emulator)):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=serve, args=(child,), daemon=True)
        process.start()
        urls[name] = parent.recv()
        servers[name] = (process, parent)

    print(
        f"Converse on loopback, zero configured latency; {args.processes} client processes x {args.threads} "
        f"threads; {args.seconds:g} s measured after {args.warmup:g} s warm-up per run; "
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )
    print(f"{'run':<40} {'calls':>8} {'calls/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    runs = [
        ("baseline: bare HTTP server, boto3 clients", "baseline", "boto3"),
        ("emulator, boto3 clients", "emulator", "boto3"),
        ("baseline: bare HTTP server, raw clients", "baseline", "raw"),
        ("emulator, raw clients (pre-signed)", "emulator", "raw"),
    ]
    results = {}
    for label, target, kind in runs:
        result = drive(ctx, label, urls[target], kind, args)
        results[(target, kind)] = result
        print(result.row(), flush=True)

    for _, pipe in servers.values():
        pipe.send("stop")
    emulator_totals = servers["emulator"][1].recv()
    for process, _ in servers.values():
        process.join(timeout=10)

    for kind in ("boto3", "raw"):
        base, emu = results[("baseline", kind)], results[("emulator", kind)]
        extra = statistics.median(emu.latencies) - statistics.median(base.latencies)
        print(
            f"emulator vs baseline, {kind} clients: {emu.calls / base.calls:.0%} of the baseline's calls/s, "
            f"median latency {extra * 1000:+.2f} ms"
        )
    print(
        f"emulator counted {emulator_totals['calls']} calls ({emulator_totals['errors']} errors) "
        f"including warm-up; total run {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
