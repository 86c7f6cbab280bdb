"""Synchronous inference side by side, in one run against one Bedrock emulator answering at once:
Converse straight to the emulator, xpi's POST /v1/invoke (the local API Gateway, SigV4, the sync path's
function warm) and a pinned LiteLLM proxy in front of the same emulator. 60 warm sequential calls each;
p50/p95 and what each adds over the direct call at p50.

LiteLLM runs from its own venv (.xpi/tools/litellm, requirements/litellm.txt; `make litellm`), never the
project's. The machine may be shared: the load average is printed beside the figures, and so is the CPU
each path used per call (this process, which holds the client, the local stack and the emulator, and
every process under it: the functions' runtimes, the LiteLLM proxy), which a busy machine stretches far
less than it stretches the latency.
"""

import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from _stack import ROOT, percentile, start_stack
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from xpi_tools.emulator.client import EmulatorControl

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
WARMUP = 5
MODEL = "us.amazon.nova-lite-v1:0"
PROMPT = "Summarise the benefits of lineage in one paragraph."
LITELLM = ROOT / ".xpi" / "tools" / "litellm" / "bin" / "litellm"
MASTER_KEY = f"sk-{secrets.token_hex(32)}"


def cpu_ms() -> float:
    """CPU time (user + system) of this process and every process under it, in ms, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = int(fields[11]) + int(fields[12])
    ours, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in ours]
        ours.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0) for pid in ours) * 1000 / os.sysconf("SC_CLK_TCK")


CPU_PER_CALL: dict[int, float] = {}


def timed(call: Callable[[], object], calls: int) -> list[float]:
    for _ in range(WARMUP):
        call()
    latencies = []
    cpu_before = cpu_ms()
    for _ in range(calls):
        started = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - started) * 1000)
    CPU_PER_CALL[id(latencies)] = (cpu_ms() - cpu_before) / calls
    return latencies


class KeepAlive:
    """One HTTP/1.1 connection kept open across calls, as an SDK's pool keeps it (the direct call's
    boto3 client does): xpi's gateway and LiteLLM are each called over one, so neither path pays a TCP
    connect per call. A connection the server closed is opened again once."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.base = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
        self.connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.connection.request("POST", self.base + path, body=body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def commercial_keys(endpoints: Any) -> dict[str, str]:
    """The emulator's access key, read as the invoke step's role (the secret's policy allows no other)."""
    role = endpoints.function_credentials["InvokeModelFunction"]
    secret = (
        boto3.Session(
            region_name=endpoints.region,
            aws_access_key_id=role["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=role["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=role["AWS_SESSION_TOKEN"],
        )
        .client("secretsmanager", endpoint_url=endpoints.aws)
        .get_secret_value(SecretId=endpoints.outputs["CommercialCredentialsSecretArn"])["SecretString"]
    )
    return dict(json.loads(secret))


def direct_call(endpoints: Any, keys: dict[str, str]) -> Callable[[], object]:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=endpoints.bedrock,
        region_name=endpoints.bedrock_region,
        aws_access_key_id=keys["aws_access_key_id"],
        aws_secret_access_key=keys["aws_secret_access_key"],
    )

    def call() -> object:
        return client.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": PROMPT}]}])

    return call


def xpi_call(endpoints: Any) -> Callable[[], object]:
    keys = endpoints.api_credentials["caller2"]
    credentials = Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"])
    gateway = KeepAlive(endpoints.api)

    def call() -> object:
        request_id = f"bench-sync-{uuid.uuid4().hex[:16]}"
        body = json.dumps({"request_id": request_id, "model": "default", "prompt": PROMPT})
        request = AWSRequest(
            method="POST",
            url=endpoints.api + "/v1/invoke",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(credentials, "execute-api", endpoints.region).add_auth(request)
        prepared = request.prepare()
        _, raw = gateway.post("/v1/invoke", prepared.body, dict(prepared.headers.items()))
        answer = json.loads(raw)
        if answer.get("status") != "COMPLETED":
            raise RuntimeError(f"xpi answered {answer.get('status')}: {answer.get('error')}")
        return answer

    return call


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_litellm(endpoints: Any, keys: dict[str, str], work: Path) -> tuple[subprocess.Popen[bytes], str]:
    if not LITELLM.exists():
        raise SystemExit(f"{LITELLM} is missing: run `make litellm` (its own venv, requirements/litellm.txt)")
    config = work / "litellm.yaml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "model_list": [
                    {
                        "model_name": "nova-lite",
                        "litellm_params": {
                            "model": f"bedrock/converse/{MODEL}",
                            "aws_access_key_id": keys["aws_access_key_id"],
                            "aws_secret_access_key": keys["aws_secret_access_key"],
                            "aws_region_name": endpoints.bedrock_region,
                            "aws_bedrock_runtime_endpoint": endpoints.bedrock,
                        },
                    }
                ],
                "litellm_settings": {"telemetry": False, "num_retries": 0},
                # The proxy authenticates every call (a master key, sent as a bearer token), as xpi does.
                "general_settings": {"master_key": MASTER_KEY},
            }
        )
    )
    port = free_port()
    log = (ROOT / ".xpi" / "tools" / "litellm.log").open("wb")
    command = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--num_workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "NO_DOCS": "True"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("litellm exited; see .xpi/tools/litellm.log")
        try:
            with urllib.request.urlopen(url + "/health/liveliness", timeout=2):
                return process, url
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    process.kill()
    raise SystemExit("litellm did not start within 180 s; see .xpi/tools/litellm.log")


def litellm_call(url: str) -> Callable[[], object]:
    body = json.dumps({"model": "nova-lite", "messages": [{"role": "user", "content": PROMPT}]}).encode()
    proxy = KeepAlive(url)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"}

    def call() -> object:
        status, raw = proxy.post("/chat/completions", body, headers)
        if status != 200:
            raise RuntimeError(f"LiteLLM answered {status}: {raw[:200]!r}")
        return json.loads(raw)

    return call


def litellm_version() -> str:
    python = LITELLM.parent / "python"
    script = "import importlib.metadata as m; print(m.version('litellm'))"
    found = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True)
    return found.stdout.strip()


def main() -> None:
    load_before = os.getloadavg()
    stack = start_stack()
    litellm: subprocess.Popen[bytes] | None = None
    try:
        endpoints = stack.endpoints
        assert endpoints is not None
        EmulatorControl(endpoints.emulator_control).set_latency("*")  # answering at once
        keys = commercial_keys(endpoints)
        with tempfile.TemporaryDirectory(prefix="bench-sync-") as work:
            litellm, url = start_litellm(endpoints, keys, Path(work))
            lite = f"LiteLLM proxy {litellm_version()} in front of the same emulator"
            rows = {
                "Converse straight to the emulator": timed(direct_call(endpoints, keys), CALLS),
                "xpi POST /v1/invoke (local API gateway, SigV4)": timed(xpi_call(endpoints), CALLS),
                lite: timed(litellm_call(url), CALLS),
            }
    finally:
        if litellm is not None:
            litellm.terminate()
            litellm.wait(timeout=20)
        stack.stop()
    load_after = os.getloadavg()
    direct = statistics.median(next(iter(rows.values())))
    print(f"{CALLS} warm sequential calls each, one emulator answering at once")
    print("| path | p50 | p95 | adds over direct (p50) | CPU per call, all processes |")
    print("|---|---|---|---|---|")
    adds = {}
    for name, values in rows.items():
        p50 = statistics.median(values)
        adds[name] = p50 - direct
        over = "-" if p50 == direct else f"+{p50 - direct:.1f} ms"
        cpu = CPU_PER_CALL[id(values)]
        print(f"| {name} | {p50:.1f} ms | {percentile(values, 0.95):.1f} ms | {over} | {cpu:.1f} ms |")
    xpi, lite = list(adds.values())[1:]
    verdict = "yes" if xpi <= lite else "no"
    print(f"xpi adds {xpi:.1f} ms at p50, LiteLLM {lite:.1f} ms: xpi adds no more than LiteLLM: {verdict}")
    print(
        f"load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after {', '.join(f'{v:.2f}' for v in load_after)} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
