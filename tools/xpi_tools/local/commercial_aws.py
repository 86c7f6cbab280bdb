"""The commercial account's AWS API on the local stack: a second moto server, in the `aws` partition
(`us-east-1`), playing the commercial account's S3 and KMS for Bedrock batch inference jobs.

It runs in a process of its own, not beside the GovCloud moto server in the stack's process: moto keeps
its backends in module globals, and the stack's process patches moto for GovCloud (IAM enforcement with
the template's roles, the fault hooks, the Step Functions interpreter), none of which is the commercial
account's. Here nothing is patched: moto's own S3 and KMS, with its default (permissive) authorization.

At start it creates what the commercial account's operator would: the batch bucket, the account's KMS
key for it (SSE-KMS), and the access key the emulator signs with while it acts as the batch jobs'
service role (`BatchSettings.role_credentials`). Stopped with the stack; a stack killed outright takes
it along (the parent-death signal on Linux)."""

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3

from xpi_tools.emulator.config import AccessKey

REGION = "us-east-1"
START_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class CommercialBatch:
    """What the stack's batch jobs use on the commercial side (written to the state file)."""

    url: str  # the commercial moto server (S3, KMS)
    region: str
    bucket: str
    kms_key_arn: str
    role_arn: str  # the batch jobs' service role (the emulator signs S3 requests with its key)
    role_key: AccessKey = field(repr=False)

    def public(self) -> dict[str, str]:
        return {
            "url": self.url,
            "region": self.region,
            "bucket": self.bucket,
            "kms_key_arn": self.kms_key_arn,
            "role_arn": self.role_arn,
        }


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class CommercialAws:
    def __init__(self, account_id: str, port: int, log_path: Path, *, region: str = REGION) -> None:
        self.account_id = account_id
        self.region = region
        self.url = f"http://127.0.0.1:{port}"
        self._port = port
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # The batch jobs' service role's key: known before the server is up, so the emulator can be
        # configured with it while the server starts.
        self.role_key = AccessKey("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))

    def role_arn(self, role_name: str) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{role_name}"

    def launch(self) -> None:
        """Start the server's process (returns at once: `ready` waits for it)."""
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self._log_path.open("wb")
        self._process = subprocess.Popen(  # our own interpreter, fixed arguments
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self._port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_ACCOUNT_ID": self.account_id},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )

    def ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"the commercial moto server exited; see {self._log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2) as answer:  # noqa: S310
                    answer.read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    message = f"the commercial moto server did not start; see {self._log_path}"
                    raise RuntimeError(message) from None
                time.sleep(0.1)

    def provision(self, bucket: str, role_name: str) -> CommercialBatch:
        """Once the server answers, the commercial operator's setup for batch jobs: the bucket and its
        KMS key (the role's key is `role_key`)."""
        self.ready()
        session = self.session()
        kms = session.client("kms", endpoint_url=self.url)
        key = kms.create_key(Description="xpi batch inference (commercial account)")["KeyMetadata"]
        s3 = session.client("s3", endpoint_url=self.url)
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key["Arn"],
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        return CommercialBatch(
            url=self.url,
            region=self.region,
            bucket=bucket,
            kms_key_arn=key["Arn"],
            role_arn=self.role_arn(role_name),
            role_key=self.role_key,
        )

    def session(self, credentials: AccessKey | None = None) -> Any:
        key = credentials or AccessKey("testing", "testing")
        return boto3.Session(
            region_name=self.region,
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
