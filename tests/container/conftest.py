"""Fixtures for tests that run functions under `sam local invoke`, in a Lambda container.

- Docker: `tools/lambda-image/ensure-docker.sh` starts a daemon when none answers (installing
  docker.io if needed). Where Docker cannot run at all, every test here is skipped with its message.
- Image: by default the local base image built by `tools/lambda-image/build.sh` (cached; about a
  second when current), passed with `--invoke-image ... --skip-pull-image`, so nothing is pulled.
  On a machine that can pull AWS's images, XPI_SAM_AWS_IMAGE=1 runs plain `sam local invoke`.
- Network: containers talk to the host over loopback and unix sockets only. SAM 1.170 keeps the
  container on Docker's bridge (even with `--docker-network host`), where 127.0.0.1 is the container.
  The host serves a unix socket in the function's code folder (mounted read-only at /var/task;
  connect() still works) that relays to a port on the host's 127.0.0.1, and the image's bootstrap
  relays 127.0.0.1:PORT in the container to that socket when XPI_LOOPBACK_FORWARDS asks for it
  (tools/lambda-image/loopback_forward.py on both sides).
- `stack_invoke` runs the xpi functions of template.yaml that way against a local stack
  (tools/lambda-image/local_invoke.py: build copy, sockets, --env-vars).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LAMBDA_IMAGE_TOOLS = REPO / "tools" / "lambda-image"
INVOKE_TIMEOUT_S = 300
USE_AWS_IMAGE = os.environ.get("XPI_SAM_AWS_IMAGE") == "1"


@pytest.fixture(scope="session")
def lambda_architecture() -> str:
    """This machine's Lambda architecture: local builds and runs use it (template parameter Architecture)."""
    return "arm64" if platform.machine().lower() in {"aarch64", "arm64"} else "x86_64"


def _sam_executable() -> str:
    beside_python = Path(sys.executable).with_name("sam")
    found = str(beside_python) if beside_python.exists() else shutil.which("sam")
    if not found:
        pytest.fail("the sam command is not installed (aws-sam-cli is in the dev requirements)")
    return found


def _sam_env() -> dict[str, str]:
    # `sam local invoke` asks STS for the account id; keep that on loopback (nothing answers on port 9,
    # so it fails at once and SAM uses its default account id) instead of reaching out to AWS.
    return {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
    }


def _overrides_args(overrides: Mapping[str, str]) -> list[str]:
    if not overrides:
        return []
    return ["--parameter-overrides", " ".join(f"{key}={value}" for key, value in overrides.items())]


@dataclass(frozen=True)
class InvokeResult:
    """What `sam local invoke` printed: the function's response (stdout), SAM's and its logs (stderr)."""

    payload: Any
    stdout: str
    stderr: str
    seconds: float

    @property
    def is_error(self) -> bool:
        # Lambda reports a raised exception as a JSON object with errorType / errorMessage.
        return isinstance(self.payload, dict) and "errorType" in self.payload


SamBuild = Callable[..., Path]
SamInvoke = Callable[..., InvokeResult]


def _result(proc: subprocess.CompletedProcess[str], function_id: str, seconds: float) -> InvokeResult:
    """The function's response: SAM prints it as the last line of stdout (logs go to stderr)."""
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail(f"sam local invoke {function_id} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    payload: Any = proc.stdout
    for candidate in (proc.stdout.strip(), proc.stdout.strip().splitlines()[-1]):
        try:
            payload = json.loads(candidate)
            break
        except json.JSONDecodeError:
            continue
    return InvokeResult(payload=payload, stdout=proc.stdout, stderr=proc.stderr, seconds=seconds)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker daemon that answers, started if needed; skip the test where Docker cannot run."""
    proc = subprocess.run(
        [str(LAMBDA_IMAGE_TOOLS / "ensure-docker.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.startswith("docker unavailable:")]
        pytest.skip(lines[-1] if lines else f"docker unavailable: ensure-docker.sh exited {proc.returncode}")


@pytest.fixture(scope="session")
def lambda_invoke_image(docker_engine: None) -> str | None:
    """The image for --invoke-image (built or confirmed current), or None to let SAM pull AWS's image."""
    if USE_AWS_IMAGE:
        return None
    build = subprocess.run(
        [str(LAMBDA_IMAGE_TOOLS / "build.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    if build.returncode != 0:
        pytest.fail(f"tools/lambda-image/build.sh failed:\n{build.stderr[-4000:]}")
    return subprocess.run(
        [str(LAMBDA_IMAGE_TOOLS / "build.sh"), "--print-image"], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="session")
def _build_overrides() -> dict[Path, dict[str, str]]:
    """Parameter overrides each built template was built with; invoke passes the same ones again."""
    return {}


@pytest.fixture(scope="session")
def sam_build(
    tmp_path_factory: pytest.TempPathFactory,
    lambda_architecture: str,
    _build_overrides: dict[Path, dict[str, str]],
) -> SamBuild:
    """`sam build` a template once per session; returns the built template.

    template.yaml is built with Architecture=<this machine's>: its default is arm64 (deployment),
    which this machine cannot run (`exec format error` from SAM's arm64 emulator, then a timeout).
    """
    built: dict[Path, Path] = {}

    def build(
        template: Path = REPO / "template.yaml", parameter_overrides: Mapping[str, str] | None = None
    ) -> Path:
        template = template.resolve()
        if template in built:
            return built[template]
        overrides = {"Architecture": lambda_architecture} if template == REPO / "template.yaml" else {}
        overrides.update(parameter_overrides or {})
        build_dir = tmp_path_factory.mktemp("sam-build")
        cmd = [_sam_executable(), "build", "--template-file", str(template), "--build-dir", str(build_dir)]
        cmd += _overrides_args(overrides)
        proc = subprocess.run(
            cmd,
            cwd=template.parent,
            env=_sam_env(),
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"sam build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        built[template] = build_dir / "template.yaml"
        _build_overrides[built[template]] = overrides
        return built[template]

    return build


@pytest.fixture(scope="session")
def sam_local_invoke(
    lambda_invoke_image: str | None,
    tmp_path_factory: pytest.TempPathFactory,
    _build_overrides: dict[Path, dict[str, str]],
) -> SamInvoke:
    """Run one function once with `sam local invoke` and return its parsed response.

    invoke(built_template, "LogicalId", event, env={"VAR": "value"}, parameter_overrides={...})
    `event` is a path (for example events/<name>.json) or a JSON-able value; `env` overrides the
    function's environment variables (SAM's --env-vars). The build's parameter overrides are passed
    again (SAM resolves Architecture at invoke time too); `parameter_overrides` adds to them.
    """
    scratch = tmp_path_factory.mktemp("sam-invoke")

    def invoke(
        built_template: Path,
        function_id: str,
        event: Path | Any,
        env: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
    ) -> InvokeResult:
        if isinstance(event, Path):
            event_path = event
        else:
            event_path = scratch / f"{function_id}-{time.monotonic_ns()}.json"
            event_path.write_text(json.dumps(event))
        cmd = [
            _sam_executable(),
            "local",
            "invoke",
            function_id,
            "--template",
            str(built_template),
            "--event",
            str(event_path),
        ]
        if lambda_invoke_image:
            cmd += ["--invoke-image", lambda_invoke_image, "--skip-pull-image"]
        if env:
            env_path = scratch / f"{function_id}-env-{time.monotonic_ns()}.json"
            env_path.write_text(json.dumps({function_id: dict(env)}))
            cmd += ["--env-vars", str(env_path)]
        cmd += _overrides_args({**_build_overrides.get(built_template, {}), **(parameter_overrides or {})})
        started = time.monotonic()
        proc = subprocess.run(
            cmd, env=_sam_env(), capture_output=True, text=True, timeout=INVOKE_TIMEOUT_S, check=False
        )
        return _result(proc, function_id, time.monotonic() - started)

    return invoke


# ---------------------------------------------------------------------- xpi functions, local stack
def _load_local_invoke() -> ModuleType:
    """tools/lambda-image/local_invoke.py (a script folder, not a package): loaded by its path."""
    spec = importlib.util.spec_from_file_location("xpi_local_invoke", LAMBDA_IMAGE_TOOLS / "local_invoke.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


local_invoke = _load_local_invoke()


@pytest.fixture(scope="session")
def xpi_build(lambda_architecture: str) -> Path:
    """`.aws-sam/build` of template.yaml (what `make build` makes), built here only when missing."""
    build = REPO / ".aws-sam" / "build"
    if not (build / "template.yaml").is_file():
        proc = subprocess.run(
            [
                _sam_executable(),
                "build",
                "--cached",
                "--parameter-overrides",
                f"Architecture={lambda_architecture}",
            ],
            cwd=REPO,
            env=_sam_env(),
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"sam build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return build


@pytest.fixture(scope="module")
def local_stack_state(docker_engine: None) -> Iterator[dict[str, Any]]:
    """One local stack (`xpi local up --no-build`, as tests/integration starts it) for the module; its
    state file's content. It stops when the module ends, or by itself if pytest dies."""
    with local_invoke.local_stack(None, REPO / ".xpi" / "local" / "container-stack.log") as state:
        yield state


@dataclass
class StackInvoke:
    """Runs an xpi function of template.yaml under `sam local invoke`, wired to the local stack."""

    session: Any  # local_invoke.Session
    image: str

    @property
    def state(self) -> dict[str, Any]:
        return dict(self.session.state)

    @property
    def functions(self) -> list[str]:
        return list(self.session.functions)

    def aws(self, service: str) -> Any:
        """A boto3 client for the local stack's AWS API (from the test process, on loopback)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.state["aws"],
            region_name=self.state["region"],
            **{k.lower(): v for k, v in local_invoke.LOCAL_CREDENTIALS.items()},
        )

    def staged(self, event: Any) -> Any:
        """The event with its request body (a sample of events/payloads/) put in the local stack's
        artifacts bucket, its reference pointed there (without the unit tests' keyed hash), and a
        classification's payload hash made with the stack's own hash key."""
        import copy
        import hmac as hmac_
        import json

        from xpi.domain.payload import outbound_bytes
        from xpi.models.request import InferenceRequest

        if not isinstance(event, dict) or "payload" not in event:
            return event
        event = copy.deepcopy(event)
        ref = event["payload"]
        name = ref["key"].removeprefix("payloads/").removesuffix("/sample.json")
        body = (REPO / "events" / "payloads" / f"{name}.json").read_bytes()
        bucket = self.state["outputs"]["ArtifactsBucketName"]
        self.aws("s3").put_object(Bucket=bucket, Key=ref["key"], Body=body)
        event["payload"] = {"bucket": bucket, "key": ref["key"], "bytes": len(body)}
        if (event.get("classification") or {}).get("payload_hmac"):
            secrets = self.aws("secretsmanager")
            listed = secrets.list_secrets()["SecretList"]
            [arn] = [secret["ARN"] for secret in listed if "XpiHashKeySecret" in secret["Name"]]
            key = secrets.get_secret_value(SecretId=arn)["SecretString"].encode()
            request = InferenceRequest.model_validate(json.loads(body))
            event["classification"]["payload_hmac"] = hmac_.new(
                key, outbound_bytes(request), "sha256"
            ).hexdigest()
        return event

    def __call__(self, function_id: str, event: Path | Any) -> InvokeResult:
        event = self.staged(event)
        command = self.session.command(function_id, event, self.image)
        started = time.monotonic()
        proc = subprocess.run(
            command,
            env=local_invoke.sam_process_env(self.session.state, function_id),
            capture_output=True,
            text=True,
            timeout=INVOKE_TIMEOUT_S,
            check=False,
        )
        return _result(proc, function_id, time.monotonic() - started)


@pytest.fixture(scope="module")
def stack_invoke(
    lambda_invoke_image: str | None, xpi_build: Path, local_stack_state: dict[str, Any]
) -> Iterator[StackInvoke]:
    """A private copy of the build with the socket relays in place, and the --env-vars of the stack."""
    if lambda_invoke_image is None:
        pytest.skip(
            "XPI_SAM_AWS_IMAGE=1: AWS's image has no loopback forwarder; these tests need the local image"
        )
    with tempfile.TemporaryDirectory(prefix="run-", dir=local_invoke.work_root(xpi_build)) as work:
        session = local_invoke.Session(local_stack_state, xpi_build, Path(work))
        try:
            yield StackInvoke(session, lambda_invoke_image)
        finally:
            session.close()
