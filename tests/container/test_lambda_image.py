"""The Lambda container path itself, with a throwaway function: image, SAM wiring, and the loopback relay
to a server on the host (unix socket in the code folder <-> 127.0.0.1 on each side).

The per-function tests (every function of template.yaml with its events/ sample) belong beside this
file and use the same fixtures: sam_build() for template.yaml, then sam_local_invoke(...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.container.conftest import local_invoke

pytestmark = pytest.mark.container

HANDLER = """
import os
import socket
import sys

import boto3


def handler(event, context):
    out = {
        "event": event,
        "greeting": os.environ.get("GREETING"),
        "boto3_file": boto3.__file__,
        "python": sys.version.split()[0],
        "prefix": sys.prefix,
        "function_name": context.function_name,
    }
    endpoint = os.environ.get("ENDPOINT_URL")
    if endpoint:
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        out["queues"] = sqs.list_queues().get("QueueUrls", [])
    if "probe_port" in event:
        with socket.socket() as probe:
            out["port_open"] = probe.connect_ex(("127.0.0.1", event["probe_port"])) == 0
    if event.get("fail"):
        raise ValueError("asked to fail")
    return out
"""


@pytest.fixture(scope="module")
def probe_template(
    tmp_path_factory: pytest.TempPathFactory, sam_build: Callable[..., Path], lambda_architecture: str
) -> Path:
    root = tmp_path_factory.mktemp("probe-app")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text(HANDLER)
    (root / "template.yaml").write_text(f"""\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Probe:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      Architectures: [{lambda_architecture}]
      CodeUri: src/
      Handler: app.handler
      Timeout: 30
      Environment:
        Variables:
          GREETING: from-template
          ENDPOINT_URL: ""
          XPI_LOOPBACK_FORWARDS: ""
""")
    return sam_build(root / "template.yaml")


def test_function_runs_on_the_local_image_with_its_template_environment(
    probe_template: Path, sam_local_invoke: Callable[..., Any]
) -> None:
    # WHEN
    result = sam_local_invoke(probe_template, "Probe", {"hello": "world"})

    # THEN
    assert not result.is_error, result.stderr
    assert result.payload["event"] == {"hello": "world"}
    assert result.payload["greeting"] == "from-template"
    assert result.payload["python"].startswith("3.13.")
    assert result.payload["function_name"] == "Probe"
    # The function's code comes first on the path; boto3 comes from the runtime unless it ships its own.
    assert result.payload["boto3_file"].startswith(("/var/runtime/", "/var/task/"))


def test_a_raised_exception_comes_back_as_a_lambda_error(
    probe_template: Path, sam_local_invoke: Callable[..., Any]
) -> None:
    result = sam_local_invoke(probe_template, "Probe", {"fail": True})

    assert result.is_error
    assert result.payload["errorType"] == "ValueError"
    assert result.payload["errorMessage"] == "asked to fail"


def test_bootstrap_relays_a_loopback_port_only_when_asked(
    probe_template: Path, sam_local_invoke: Callable[..., Any]
) -> None:
    # WHEN the variable is empty (the default) / set
    default = sam_local_invoke(probe_template, "Probe", {"probe_port": 18080})
    asked = sam_local_invoke(
        probe_template,
        "Probe",
        {"probe_port": 18080},
        env={"XPI_LOOPBACK_FORWARDS": "18080=/var/task/.xpi-aws.sock"},
    )

    # THEN nothing listens in the container by default; the relay listens when asked
    assert default.payload["port_open"] is False
    assert asked.payload["port_open"] is True


def test_function_reaches_a_server_on_the_hosts_loopback_through_a_unix_socket(
    probe_template: Path, sam_local_invoke: Callable[..., Any]
) -> None:
    # GIVEN an AWS API (moto) on the host's 127.0.0.1 with one queue, and a unix socket relaying to it
    # in the probe's code folder, which SAM mounts read-only at /var/task
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()  # port=0: the OS picked a free one
        boto3.client(
            "sqs",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_queue(QueueName="probe-queue")
        socket_path = probe_template.parent / "Probe" / ".xpi-aws.sock"
        with local_invoke.loopback_forward.Forwards(
            [local_invoke.loopback_forward.unix_to_tcp(socket_path, "127.0.0.1", port)]
        ):
            # WHEN the function calls 127.0.0.1:18080 in its container
            result = sam_local_invoke(
                probe_template,
                "Probe",
                {},
                env={
                    "ENDPOINT_URL": "http://127.0.0.1:18080",
                    "XPI_LOOPBACK_FORWARDS": "18080=/var/task/.xpi-aws.sock",
                },
            )
        assert not socket_path.exists()  # closing the relay removes its socket file
    finally:
        server.stop()

    # THEN
    assert not result.is_error, result.payload
    assert [url.rsplit("/", 1)[-1] for url in result.payload["queues"]] == ["probe-queue"]
