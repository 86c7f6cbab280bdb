"""The Lambda container path itself, with a throwaway function: image, SAM wiring, network to the host.

The per-function tests (every function of template.yaml with its events/ sample) belong beside this
file and use the same fixtures: sam_build() for template.yaml, then sam_local_invoke(...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.container

HANDLER = """
import os
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


def test_function_reaches_a_server_on_the_host_through_the_host_alias(
    probe_template: Path, sam_local_invoke: Callable[..., Any], docker_bridge_address: str, host_alias: str
) -> None:
    # GIVEN an AWS API (moto) on the host, listening on the Docker bridge address, with one queue
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=docker_bridge_address, port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()  # port=0: the OS picked a free one
        import boto3

        boto3.client(
            "sqs",
            endpoint_url=f"http://{docker_bridge_address}:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_queue(QueueName="probe-queue")

        # WHEN the function calls it by the host alias
        result = sam_local_invoke(
            probe_template, "Probe", {}, env={"ENDPOINT_URL": f"http://{host_alias}:{port}"}
        )
    finally:
        server.stop()

    # THEN
    assert not result.is_error, result.payload
    assert [url.rsplit("/", 1)[-1] for url in result.payload["queues"]] == ["probe-queue"]
