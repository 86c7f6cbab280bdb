"""Egress paths follow the lower latency (docs/network.md): two paths to one Bedrock emulator, each behind
a network namespace and veth pair of its own (xpi_tools.local.netns, HTTPS to the namespace's address),
with its own added latency, `internet` first in the list and `vpn` second (priority_step_ms 50).
POST /v1/invoke, sequential, in three phases:

1. no health data yet: the calls go by priority (internet, 80 ms link);
2. after the health function measured both (internet 80 ms, vpn 20 ms: 20 + 50 < 80): the calls take vpn;
3. the vpn link slows to 150 ms, the health function measures again: the calls go back to internet.

Prints, per phase, the path each call took (from lineage) and the call latency p50/p95. What it shows is
the choice following measured latency; the links are simulated, so the gain is the links' difference by
construction, not a measurement of a real VPN or Direct Connect (docs/network.md, "Proven here, and not").
The added latency is the namespace forwarder's (userspace: once per TLS handshake and once per request):
this kernel has no netem. Needs root (network namespaces); says why and exits otherwise.
"""

import json
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from _stack import percentile, start_stack
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from xpi.domain.config_signing import sign
from xpi_tools.certificates import make_ca
from xpi_tools.local.netns import NamespacePath, unavailable_reason

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
INTERNET_S, VPN_S, VPN_SLOW_S = 0.080, 0.020, 0.150


class Bench:
    def __init__(self, stack: Any) -> None:
        self.endpoints = stack.endpoints
        session = boto3.Session(
            region_name=stack.region, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.aws = lambda service: session.client(service, endpoint_url=self.endpoints.aws)
        self.lineage = session.resource("dynamodb", endpoint_url=self.endpoints.aws).Table(
            self.endpoints.outputs["LineageTableName"]
        )
        keys = self.endpoints.api_credentials["caller2"]
        self.credentials = Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"])

    def put_paths(self, document: dict[str, Any]) -> None:
        health = self.aws("lambda").get_function_configuration(
            FunctionName=self.endpoints.outputs["PathHealthFunctionName"]
        )
        secret_id = health["Environment"]["Variables"]["CONFIG_SIGNING_SECRET_ID"]
        secret = self.aws("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
        key = json.loads(secret)["key"]
        envelope = sign(
            document,
            kind="egress",
            revision=1,
            changed_by="bench",
            changed_at=datetime.now(UTC).isoformat(),
            key=key.encode("utf-8"),
        )
        self.aws("ssm").put_parameter(
            Name=f"/xpi/{self.endpoints.stack_name}/egress-paths",
            Value=envelope.model_dump_json(),
            Type="String",
            Overwrite=True,
        )

    def call(self) -> tuple[float, str]:
        request_id = f"bench-egress-{uuid.uuid4().hex[:12]}"
        body = json.dumps({"request_id": request_id, "model": "default", "prompt": "hello"})
        request = AWSRequest(
            method="POST",
            url=self.endpoints.api + "/v1/invoke",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(self.credentials, "execute-api", self.endpoints.region).add_auth(request)
        prepared = request.prepare()
        outgoing = urllib.request.Request(
            prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers.items())
        )
        started = time.perf_counter()
        with urllib.request.urlopen(outgoing, timeout=30) as response:
            answer = json.loads(response.read())
        elapsed = (time.perf_counter() - started) * 1000
        if answer.get("status") != "COMPLETED":
            raise RuntimeError(f"xpi answered {answer.get('status')}: {answer.get('error')}")
        item = self.lineage.get_item(Key={"request_id": request_id}, ConsistentRead=True)["Item"]
        return elapsed, str(item.get("egress_path"))

    def check_health(self) -> dict[str, Any]:
        response = self.aws("lambda").invoke(
            FunctionName=self.endpoints.outputs["PathHealthFunctionName"], Payload=b"{}"
        )
        return {p["name"]: p["latency_p50_ms"] for p in json.loads(response["Payload"].read())["paths"]}

    def phase(self, name: str) -> None:
        self.call()  # the states are read at most once a second: the first call may still see the old ones
        results = [self.call() for _ in range(CALLS)]
        latencies = [ms for ms, _ in results]
        paths = Counter(path for _, path in results)
        print(
            f"{name:44} {dict(paths)!s:22} p50 {percentile(latencies, 0.5):6.0f} ms   "
            f"p95 {percentile(latencies, 0.95):6.0f} ms"
        )


def main() -> None:
    if (reason := unavailable_reason()) is not None:
        print(f"bench_egress skipped: {reason}")
        return
    ca = make_ca("xpi egress paths bench CA")
    folder = tempfile.TemporaryDirectory()
    trusted = Path(folder.name) / "ca.pem"
    trusted.write_bytes(ca.certificate_pem)
    stack = start_stack(trust_ca=trusted)
    assert stack.endpoints is not None
    emulator = urlsplit(stack.endpoints.bedrock)
    target = (emulator.hostname or "127.0.0.1", int(emulator.port or 80))
    try:
        with (
            NamespacePath(*target, ca, delay_s=INTERNET_S) as internet,
            NamespacePath(*target, ca, delay_s=VPN_S) as vpn,
        ):
            bench = Bench(stack)
            bench.put_paths(
                {
                    "region": stack.endpoints.bedrock_region,
                    "paths": [
                        {"name": "internet", "endpoint": internet.url},
                        {"name": "vpn", "endpoint": vpn.url},
                    ],
                    "priority_step_ms": 50,
                }
            )
            print(f"{CALLS} sequential POST /v1/invoke per phase; internet 80 ms, vpn 20 ms; step 50 ms")
            bench.phase("1. no health data: by priority")
            print(f"   health check: {bench.check_health()}")
            bench.phase("2. measured: the faster path")
            vpn.delay_s = VPN_SLOW_S
            print(f"   vpn slows to 150 ms; health check: {bench.check_health()}")
            bench.phase("3. vpn slower: back to internet")
    finally:
        stack.stop()
        folder.cleanup()


if __name__ == "__main__":
    main()
