"""`sam local invoke` one function against the local stack, over loopback and unix sockets only.

    .venv/bin/python tools/lambda-image/local_invoke.py FN EVENT [--state-file F] [-- SAM ARGS...]
    make local-invoke FN=ValidateFunction EVENT=events/validate/workflow-input.json

What it does, and undoes when the invoke ends:
1. Uses the local stack whose state file is given (`make up` writes .xpi/local/stack.json) when that
   file exists, or else starts one (`xpi local up --no-build`) and stops it afterwards.
2. Copies `.aws-sam/build` (hard links) to a private folder, so a concurrent `sam build` cannot pull the
   code from under a running container. The copy's template also declares AWS_ENDPOINT_URL,
   XPI_LOOPBACK_FORWARDS and POWERTOOLS_TRACE_DISABLED: `sam local invoke --env-vars` only sets
   variables that the template declares.
3. Serves, in every function's folder of that copy, `.xpi-aws.sock` -> the stack's AWS API and
   `.xpi-bedrock.sock` -> its Bedrock emulator (loopback_forward.py, unix-to-tcp).
4. Writes the --env-vars file: each function's environment as deployed in the stack (table names, bus,
   bucket, secret, state machine, ...) plus AWS_ENDPOINT_URL=http://127.0.0.1:18080, the Bedrock
   endpoint http://127.0.0.1:18600 (COMMERCIAL_BEDROCK_ENDPOINT, the commercial IAM and Roles Anywhere
   endpoints when set, and AWS_ENDPOINT_URL_BEDROCK_RUNTIME),
   and XPI_LOOPBACK_FORWARDS, which makes the image's bootstrap relay those two ports to the sockets
   (/var/task is the function's folder of the copy).
5. Runs `sam local invoke` with the offline image (`--invoke-image ... --skip-pull-image`), with a copy
   of the event in which a workflow state's `route.endpoint` is the forwarded emulator (what the local
   stack's Route step would have chosen), and with SAM's own AWS call (sts) sent to the local stack.

Nothing in the container talks to an address other than its own 127.0.0.1 and the socket files.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import yaml  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Port in the container, socket file in the function's folder, for each local stack endpoint.
FORWARDS = {"aws": (18080, ".xpi-aws.sock"), "bedrock": (18600, ".xpi-bedrock.sock")}
CONTAINER_AWS_URL = f"http://127.0.0.1:{FORWARDS['aws'][0]}"
CONTAINER_BEDROCK_URL = f"http://127.0.0.1:{FORWARDS['bedrock'][0]}"
LOOPBACK_FORWARDS = ",".join(f"{port}=/var/task/{name}" for port, name in FORWARDS.values())
# Declared (empty) in the copy's template so that --env-vars may set them (SAM ignores the others).
DECLARED = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    "XPI_LOOPBACK_FORWARDS",
    "POWERTOOLS_TRACE_DISABLED",
)
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
STACK_START_TIMEOUT_S = 120


def _load_forwarder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loopback_forward", HERE / "loopback_forward.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loopback_forward = _load_forwarder()


def host_architecture() -> str:
    return "arm64" if platform.machine().lower() in {"aarch64", "arm64"} else "x86_64"


# ---------------------------------------------------------------------- the build copy
def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system
        shutil.copy2(source, destination)


def function_ids(template: Mapping[str, Any]) -> list[str]:
    return [
        logical_id
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]


def copy_build(source: Path, destination: Path, only: Sequence[str] = ()) -> Path:
    """Copy a `sam build` folder (hard links) with the extra variables declared; returns its template.
    `only` limits the code folders copied to those functions."""
    template_path = source / "template.yaml"
    if not template_path.is_file():
        raise FileNotFoundError(f"no {template_path}: run `make build` first")
    template = yaml.safe_load(template_path.read_text(encoding="utf-8"))
    functions = [fn for fn in function_ids(template) if not only or fn in only]
    missing = [fn for fn in functions if not (source / fn).is_dir()]
    if missing:
        raise FileNotFoundError(f"{source} lacks {', '.join(missing)} (is a `sam build` running?)")
    destination.mkdir(parents=True, exist_ok=True)
    for fn in functions:
        shutil.copytree(
            source / fn,
            destination / fn,
            copy_function=_link_or_copy,
            ignore=shutil.ignore_patterns("__pycache__", ".xpi-*.sock"),
        )
    variables = (
        template.setdefault("Globals", {})
        .setdefault("Function", {})
        .setdefault("Environment", {})
        .setdefault("Variables", {})
    )
    for name in DECLARED:
        variables.setdefault(name, "")
    # Plain dicts: another library in the same process may have made SafeLoader build OrderedDicts,
    # which SafeDumper refuses.
    plain = json.loads(json.dumps(template))
    (destination / "template.yaml").write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")
    return destination / "template.yaml"


# ---------------------------------------------------------------------- the stack's side
def serve_sockets(build_copy: Path, functions: Sequence[str], state: Mapping[str, Any]) -> Any:
    """Unix sockets in each function's folder, relayed to the stack's TCP ports on 127.0.0.1."""
    servers = []
    try:
        for fn in functions:
            for target, (_, socket_name) in FORWARDS.items():
                url = state[target].removeprefix("http://")
                host, _, port = url.partition(":")
                servers.append(loopback_forward.unix_to_tcp(build_copy / fn / socket_name, host, int(port)))
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    return loopback_forward.Forwards(servers)


def function_environment(state: Mapping[str, Any], functions: Sequence[str]) -> dict[str, dict[str, str]]:
    """The --env-vars content: each function's environment as the local stack deployed it, with the
    AWS and Bedrock endpoints replaced by the container's forwarded ports."""
    client = boto3.client(
        "lambda",
        endpoint_url=state["aws"],
        region_name=state["region"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    env: dict[str, dict[str, str]] = {}
    for fn in functions:
        deployed = client.get_function_configuration(FunctionName=state["resources"][fn])
        variables = {k: str(v) for k, v in deployed.get("Environment", {}).get("Variables", {}).items()}
        # The emulator plays every commercial endpoint: Bedrock, IAM (rotation) and Roles Anywhere.
        for name in ("COMMERCIAL_BEDROCK_ENDPOINT", "COMMERCIAL_IAM_ENDPOINT", "ROLES_ANYWHERE_ENDPOINT"):
            if variables.get(name):
                variables[name] = CONTAINER_BEDROCK_URL
        variables.update(
            AWS_ENDPOINT_URL=CONTAINER_AWS_URL,
            # A state whose route.endpoint is "" (the public endpoint) reaches the emulator too.
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=CONTAINER_BEDROCK_URL,
            XPI_LOOPBACK_FORWARDS=LOOPBACK_FORWARDS,
            POWERTOOLS_TRACE_DISABLED="true",  # no X-Ray daemon here
        )
        env[fn] = variables
    return env


def sam_process_env(state: Mapping[str, Any], function_id: str) -> dict[str, str]:
    """SAM passes the credentials and region of its own environment to the function: those of the
    function's own execution role, which the local stack minted as Lambda would (IAM is enforced there).
    SAM's own AWS call (sts:GetCallerIdentity, for AWS::AccountId) goes to the local stack too."""
    env = {k: v for k, v in os.environ.items() if k not in {"AWS_PROFILE", "AWS_SESSION_TOKEN"}}
    env.update(
        state["function_credentials"][function_id],
        AWS_REGION=state["region"],
        AWS_DEFAULT_REGION=state["region"],
        AWS_ENDPOINT_URL=state["aws"],
        SAM_CLI_TELEMETRY="0",
    )
    return env


def local_event(event: Any) -> Any:
    """A workflow state names the Bedrock endpoint its Route step chose; the local stack's Route step
    chooses the emulator, so a sample state is pointed at the emulator (forwarded) too."""
    if isinstance(event, dict) and isinstance(event.get("route"), dict) and "endpoint" in event["route"]:
        return {**event, "route": {**event["route"], "endpoint": CONTAINER_BEDROCK_URL}}
    return event


def sam_executable() -> str:
    beside_python = Path(sys.executable).with_name("sam")
    found = str(beside_python) if beside_python.exists() else shutil.which("sam")
    if not found:
        raise FileNotFoundError("the sam command is not installed (aws-sam-cli is in the dev requirements)")
    return found


def invoke_command(
    template: Path, function_id: str, event: Path, *, env_file: Path, image: str | None, region: str
) -> list[str]:
    command = [sam_executable(), "local", "invoke", function_id, "--template", str(template)]
    command += ["--event", str(event), "--env-vars", str(env_file), "--region", region]
    command += ["--parameter-overrides", f"Architecture={host_architecture()}"]
    if image:
        command += ["--invoke-image", image, "--skip-pull-image"]
    return command


class Session:
    """A build copy, its sockets and the --env-vars file for one local stack; close() undoes all."""

    def __init__(
        self, state: Mapping[str, Any], build_dir: Path, work_dir: Path, only: Sequence[str] = ()
    ) -> None:
        self.state = state
        self.work_dir = work_dir
        self.template = copy_build(build_dir, work_dir / "build", only)
        template = yaml.safe_load(self.template.read_text(encoding="utf-8"))
        self.functions = [fn for fn in function_ids(template) if not only or fn in only]
        self.env_file = work_dir / "env.json"
        self.env_file.write_text(json.dumps(function_environment(state, self.functions), indent=2))
        self.forwards = serve_sockets(self.template.parent, self.functions, state)

    def event_file(self, event: Path | Any, name: str = "event") -> Path:
        """The event as this session passes it (see local_event), written to the work folder."""
        value = json.loads(event.read_text()) if isinstance(event, Path) else event
        path = self.work_dir / f"{name}-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(local_event(value)))
        return path

    def command(self, function_id: str, event: Path | Any, image: str | None) -> list[str]:
        event_path = self.event_file(event, function_id)
        return invoke_command(
            self.template,
            function_id,
            event_path,
            env_file=self.env_file,
            image=image,
            region=self.state["region"],
        )

    def close(self) -> None:
        self.forwards.close()


@contextlib.contextmanager
def local_stack(state_file: Path | None, log_path: Path) -> Iterator[dict[str, Any]]:
    """The stack of `state_file` when that file exists; else a new `xpi local up --no-build`, stopped
    when the block ends."""
    if state_file and state_file.exists():
        state = json.loads(state_file.read_text())
        try:
            os.kill(int(state["pid"]), 0)
        except ProcessLookupError:
            raise SystemExit(f"{state_file} names a stack that is not running (pid {state['pid']})") from None
        yield state
        return
    with tempfile.TemporaryDirectory(prefix="xpi-stack-") as scratch:
        state_path = Path(scratch) / "stack.json"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "xpi_tools.cli", "local", "up", "--no-build"),
                    *("--exit-with-parent", "--state-file", str(state_path)),
                ],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            deadline = time.monotonic() + STACK_START_TIMEOUT_S
            while not state_path.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the local stack did not start; see {log_path}")
                time.sleep(0.1)
            yield json.loads(state_path.read_text())
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def work_root(build_dir: Path) -> Path:
    """Where build copies go: in the repository (hard links need its file system), unless a socket path
    there would pass the 107 bytes that AF_UNIX allows; then the system's temporary folder."""
    root = REPO / ".xpi" / "local-invoke"
    template = build_dir / "template.yaml"
    names = function_ids(yaml.safe_load(template.read_text(encoding="utf-8"))) if template.is_file() else []
    longest_name = max((len(name) for name in names), default=40)
    longest = root / "run-xxxxxxxx" / "build" / ("x" * longest_name) / ".xpi-bedrock.sock"
    if len(str(longest).encode()) > 107:
        root = Path(tempfile.gettempdir()) / "xpi-local-invoke"
    root.mkdir(parents=True, exist_ok=True)
    return root


def default_image() -> str:
    return subprocess.run(
        [str(HERE / "build.sh"), "--print-image"], capture_output=True, text=True, check=True
    ).stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        usage="%(prog)s [options] FUNCTION EVENT [-- SAM_LOCAL_INVOKE_OPTIONS...]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("function", help="logical id in template.yaml, e.g. ValidateFunction")
    parser.add_argument("event", type=Path, help="event file, e.g. events/validate/workflow-input.json")
    parser.add_argument(
        "--state-file", type=Path, help="the state file of a running `xpi local up` (else one is started)"
    )
    parser.add_argument("--build-dir", type=Path, default=REPO / ".aws-sam" / "build")
    parser.add_argument(
        "--image", help="base image for --invoke-image (default: the local image; it holds the relay)"
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    split = arguments.index("--") if "--" in arguments else len(arguments)
    args = parser.parse_args(arguments[:split])
    extra = arguments[split + 1 :]  # after `--`: more `sam local invoke` options, passed on
    image = args.image or default_image()

    with (
        local_stack(args.state_file, REPO / ".xpi" / "local" / "local-invoke-stack.log") as state,
        tempfile.TemporaryDirectory(prefix="run-", dir=work_root(args.build_dir)) as work,
    ):
        session = Session(state, args.build_dir, Path(work), only=[args.function])
        try:
            command = session.command(args.function, args.event, image) + extra
            print("+ " + " ".join(command), file=sys.stderr, flush=True)
            return subprocess.run(command, env=sam_process_env(state, args.function), check=False).returncode
        finally:
            session.close()


if __name__ == "__main__":
    sys.exit(main())
