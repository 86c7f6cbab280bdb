"""The local stack: the real template, offline, on loopback.

    moto server (GovCloud-side AWS API, executing Step Functions)
      <- CloudFormation stack deployed from `sam build` output (deploy.py)
      -> every Lambda invoke handed to a pool of real Lambda runtime processes (RIE + awslambdaric)
    SqsPoller (the SQS event source mapping)      Bedrock emulator (the commercial partition)

Everything starts in one process and stops with it: `LocalStack.stop()`, Ctrl-C and SIGTERM all end
the moto server, the pollers, the emulator and every runtime process group.
"""

import contextlib
import importlib
import json
import logging
import os
import secrets
import socket
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from xpi_tools.emulator import BedrockEmulator, EmulatorConfig
from xpi_tools.emulator.config import AccessKey
from xpi_tools.local.deploy import Deployment, code_dir_for, deploy
from xpi_tools.local.lambda_runtime import FunctionSpec, InvokeResult, LambdaRuntimePool, default_rie_dir
from xpi_tools.local.sqs_poller import SqsPoller

ACCOUNT_ID = "123456789012"  # moto's default account
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# What the local profile changes from the template's defaults, and why:
LOCAL_PARAMETERS = {
    "Architecture": "x86_64" if os.uname().machine == "x86_64" else "arm64",  # the host's, for the RIE
    "RequestsVisibilityTimeout": "4",  # redrive to the DLQ in seconds, not minutes
    "LogRetentionDays": "30",
}


@dataclass
class Endpoints:
    """What a client needs to talk to the local stack (written to the state file as JSON)."""

    region: str
    aws: str
    bedrock: str
    bedrock_region: str
    emulator_control: str
    stack_name: str
    outputs: dict[str, str]
    resources: dict[str, str]
    pid: int = field(default_factory=os.getpid)
    # issue 7: the local API Gateway, the dashboard's signing proxy, the local API principals' keys.
    api: str = ""
    dashboard: str = ""
    api_credentials: dict[str, dict[str, str]] = field(default_factory=dict)

    def client_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.aws,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **LOCAL_CREDENTIALS,
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalStack:
    def __init__(
        self,
        project_root: Path,
        region: str = "us-gov-west-1",
        stack_name: str = "xpi-local",
        commercial_region: str = "us-east-1",
        runtimes_per_function: int = 2,
    ) -> None:
        self.root = project_root
        self.region = region
        self.stack_name = stack_name
        self.commercial_region = commercial_region
        self.work_dir = project_root / ".xpi" / "local"
        self._runtimes_per_function = runtimes_per_function
        self._server: Any = None
        self._aws_url = ""
        self._emulator: BedrockEmulator | None = None
        self._pool: LambdaRuntimePool | None = None
        self._poller: SqsPoller | None = None
        self._patch: Any = None
        self._api: Any = None  # issue 7: local API Gateway
        self._dashboard: Any = None  # issue 7: dashboard signing proxy
        self.endpoints: Endpoints | None = None
        self.deployment: Deployment | None = None
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self, build_dir: Path | None = None) -> Endpoints:
        started = time.perf_counter()
        try:
            return self._start(build_dir or self.root / ".aws-sam" / "build", started)
        except BaseException:
            self.stop()
            raise

    def _start(self, build_dir: Path, started: float) -> Endpoints:
        from moto.server import ThreadedMotoServer

        self.work_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        aws_url = self._aws_url = f"http://127.0.0.1:{port}"
        # moto's Step Functions interpreter calls the other services at localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        # werkzeug logs every request moto serves (thousands a minute under load): warnings only.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        _post_json(f"{aws_url}/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
        self.timings["moto_s"] = time.perf_counter() - started

        access_key = "AKIA" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        self._emulator = BedrockEmulator(
            EmulatorConfig(
                host="127.0.0.1",
                port=0,
                region=self.commercial_region,
                access_keys=[AccessKey(access_key_id=access_key, secret_access_key=secret_key)],
            )
        )
        self._emulator.start()

        self._pool = LambdaRuntimePool(
            python=self._runtime_python(),
            rie_dir=default_rie_dir(),
            aws_env={
                **LOCAL_CREDENTIALS,
                "AWS_ENDPOINT_URL": aws_url,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                # No X-Ray daemon here: traces would only produce "segment not found" noise.
                "POWERTOOLS_TRACE_DISABLED": "true",
            },
            max_per_function=self._runtimes_per_function,
            log_dir=self.work_dir / "logs",
        )
        self._patch_lambda_invoke()

        parameters = {
            **LOCAL_PARAMETERS,
            "CommercialRegion": self.commercial_region,
            "CommercialBedrockEndpoint": self._emulator.url,
        }
        os.environ.update({"AWS_DEFAULT_REGION": self.region, **LOCAL_CREDENTIALS})
        deploy_started = time.perf_counter()
        self.deployment, _ = deploy(
            build_dir,
            stack_name=self.stack_name,
            parameters=parameters,
            region=self.region,
            endpoint_url=aws_url,
            cache_dir=self.work_dir / "zips",
        )
        self.timings["deploy_s"] = time.perf_counter() - deploy_started

        session = boto3.Session(
            region_name=self.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        # The operator's one manual step after a real deploy: put the commercial keys in the secret.
        session.client("secretsmanager", endpoint_url=aws_url).put_secret_value(
            SecretId=self.deployment.outputs["CommercialCredentialsSecretArn"],
            SecretString=json.dumps(
                {"type": "iam", "aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
            ),
        )
        # Like Lambda's pollers, the mappings invoke through the Lambda API (and so through the seam).
        lambda_api = session.client(
            "lambda", endpoint_url=aws_url, config=Config(read_timeout=960, retries={"total_max_attempts": 1})
        )

        def invoke_through_lambda_api(function_name: str, payload: bytes) -> InvokeResult:
            started = time.perf_counter()
            response = lambda_api.invoke(FunctionName=function_name, Payload=payload)
            return InvokeResult(
                payload=response["Payload"].read(),
                function_error=response.get("FunctionError"),
                duration_ms=(time.perf_counter() - started) * 1000,
                max_memory_mb=None,
            )

        self._poller = SqsPoller(
            session.client("sqs", endpoint_url=aws_url), invoke_through_lambda_api, self.deployment.mappings
        )
        self._poller.start()
        api_url, dashboard_url, api_credentials = self._start_api(session, aws_url, build_dir, lambda_api)

        self.endpoints = Endpoints(
            region=self.region,
            aws=aws_url,
            bedrock=self._emulator.url,
            bedrock_region=self.commercial_region,
            emulator_control=self._emulator.url,
            stack_name=self.stack_name,
            outputs=self.deployment.outputs,
            resources=self.deployment.resources,
            api=api_url,
            dashboard=dashboard_url,
            api_credentials=api_credentials,
        )
        self.timings["up_s"] = time.perf_counter() - started
        return self.endpoints

    def _start_api(
        self, session: boto3.Session, aws_url: str, build_dir: Path, lambda_api: Any
    ) -> tuple[str, str, dict[str, dict[str, str]]]:
        """issue 7: moto's API Gateway does not invoke Lambda: a local API Gateway (SigV4 checked
        against moto's IAM) fronts the API function, and the dashboard's signing proxy fronts it."""
        from botocore.credentials import Credentials

        from xpi_tools.dashboard.server import DashboardServer
        from xpi_tools.local.apigateway import start_local_api

        assert self.deployment is not None
        if "ApiId" not in self.deployment.outputs:
            return "", "", {}

        def invoke(function_name: str, payload: bytes) -> tuple[bytes, str | None]:
            response = lambda_api.invoke(FunctionName=function_name, Payload=payload)
            return response["Payload"].read(), response.get("FunctionError")

        self._api, credentials = start_local_api(
            session,
            aws_url=aws_url,
            outputs=self.deployment.outputs,
            build_dir=build_dir,
            region=self.region,
            account_id=ACCOUNT_ID,
            invoke=invoke,
        )
        operator = credentials["operator"]
        self._dashboard = DashboardServer(
            self._api.url,
            self.region,
            Credentials(operator["aws_access_key_id"], operator["aws_secret_access_key"]),
        )
        return self._api.url, self._dashboard.start(), credentials

    def _runtime_python(self) -> Path:
        python = self.root / ".xpi" / "lambda-runtime" / "bin" / "python"
        if not python.exists():
            raise RuntimeError(f"no Lambda runtime Python at {python}: run `make runtime` first")
        return python

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; safe to call twice or after a failed start."""
        stoppers = [
            self._dashboard.stop if self._dashboard else None,  # issue 7
            self._api.stop if self._api else None,  # issue 7
            self._poller.stop if self._poller else None,
            self._pool.close if self._pool else None,
            self._emulator.stop if self._emulator else None,
        ]
        for stop_component in filter(None, stoppers):
            with contextlib.suppress(Exception):  # one failing stop must not leave the others running
                stop_component()
        self._poller, self._pool, self._emulator = None, None, None
        self._api, self._dashboard = None, None  # issue 7
        if self._patch is not None:
            self._patch()
            self._patch = None
        if self._server is not None:
            # moto keeps its state in this process: forget it, so the next stack starts empty.
            with contextlib.suppress(Exception):
                _post_json(f"{self._aws_url}/moto-api/reset", {})
            self._server.stop()
            self._server = None

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def write_state(self, path: Path) -> None:
        assert self.endpoints is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self.endpoints), indent=2), encoding="utf-8")
        temporary.rename(path)  # readers never see a half-written file

    # ------------------------------------------------------------------ the one seam into moto
    def _patch_lambda_invoke(self) -> None:
        """Every path by which moto runs a function (Invoke API, Step Functions tasks) ends in
        LambdaFunction.invoke: hand the call to a real runtime process of that function."""
        from moto.awslambda.models import LambdaFunction

        original = LambdaFunction.invoke
        pool = self._pool
        code_cache = self.work_dir / "code"
        registered: dict[str, FunctionSpec] = {}
        lock = threading.Lock()
        assert pool is not None

        def invoke(function: Any, body: str, request_headers: Any, response_headers: Any) -> bytes:
            spec = FunctionSpec(
                name=function.function_name,
                handler=function.handler,
                code_dir=code_dir_for(function.code_bytes, function.code_sha_256, code_cache),
                environment={str(k): str(v) for k, v in (function.environment_vars or {}).items()},
                memory_mb=int(function.memory_size),
                timeout_s=int(function.timeout),
                architecture=function.architectures[0] if function.architectures else "x86_64",
            )
            with lock:
                if registered.get(spec.name) != spec:
                    pool.register(spec)
                    registered[spec.name] = spec
            result = pool.invoke(spec.name, (body or "{}").encode("utf-8"))
            if result.function_error:
                response_headers["x-amz-function-error"] = result.function_error
            return result.payload

        LambdaFunction.invoke = invoke  # type: ignore[method-assign,assignment]

        # moto's Step Functions interpreter builds a new boto3 client for every task it runs (about
        # 17 ms of CPU each, the largest cost of an execution here); clients are thread-safe, reuse them.
        boto_client: Any = importlib.import_module("moto.stepfunctions.parser.asl.utils.boto_client")
        original_boto3 = boto_client.boto3
        boto_client.boto3 = _CachingBoto3()

        # Gap 12 (issue 6): moto's TransactWriteItems deep-copies every table it touches, for its
        # rollback: O(table size) per call, so a 10,000-line batch (one transaction per line) slows
        # to a crawl. Roll back the items the transaction names instead (O(items), same outcome).
        dynamodb_models: Any = importlib.import_module("moto.dynamodb.models")
        backend = dynamodb_models.DynamoDBBackend
        original_copy, original_transact = dynamodb_models.copy, backend.transact_write_items
        dynamodb_models.copy = _NoTableCopies(original_copy)
        backend.transact_write_items = _with_item_rollback(original_transact)

        # Gap 13 (issue 6): moto's interpreter appends every thread it starts (one per task with a
        # timeout, per callback wait, per branch) to a module list, TMP_THREADS, and never removes them.
        # On Python 3.13 a finished thread's 8 MiB stack stays mapped while its Thread object lives, so
        # a long run used up the process's memory maps (~4,000 batch lines): keep only live threads.
        original_threads = _share_live_thread_list()

        def restore() -> None:
            LambdaFunction.invoke = original  # type: ignore[method-assign]
            boto_client.boto3 = original_boto3
            dynamodb_models.copy = original_copy
            backend.transact_write_items = original_transact
            _share_live_thread_list(original_threads)

        self._patch = restore


class _LiveThreads(list[threading.Thread]):
    """moto's TMP_THREADS (gap 13): dropping finished threads on every append keeps it short."""

    def append(self, thread: threading.Thread) -> None:
        self[:] = [alive for alive in self if alive.is_alive()]
        super().append(thread)


def _share_live_thread_list(replacement: list[Any] | None = None) -> list[Any]:
    """Put `replacement` (default: a _LiveThreads) in place of moto's TMP_THREADS, in its own module
    and in every module that already imported it by name; returns the list it replaced."""
    import sys

    threads_module: Any = importlib.import_module("moto.stepfunctions.parser.utils")
    current: list[Any] = threads_module.TMP_THREADS
    new = _LiveThreads(current) if replacement is None else replacement
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions") and getattr(module, "TMP_THREADS", None) is current:
            setattr(module, "TMP_THREADS", new)  # noqa: B010 - moto's modules are not typed for it
    return current


class _NoTableCopies:
    """Stands in for the `copy` module inside moto.dynamodb.models (gap 12): a Table "deep copy" is the
    table itself, so moto's whole-table rollback does nothing; _with_item_rollback does it instead.
    Everything else is copied as `copy` does."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else self._real.deepcopy(value, memo)


def _with_item_rollback(transact_write_items: Any) -> Any:
    """moto's TransactWriteItems, rolled back item by item (gap 12): the items it names are saved
    first, and put back (or deleted, if they did not exist) when the transaction fails."""
    import copy

    def transact(backend: Any, transact_items: list[dict[str, Any]]) -> Any:
        saved: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue  # moto answers it
            names = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
            key = op.get("Key") or {name: op.get("Item", {}).get(name) for name in names}
            try:
                current = backend.get_item(op["TableName"], key)
            except Exception:  # noqa: S112 - a malformed key: moto's own answer follows
                continue
            attributes = copy.deepcopy(current.to_json()["Attributes"]) if current else None
            saved.append((op["TableName"], key, attributes))
        try:
            return transact_write_items(backend, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(saved):
                if attributes is None:
                    backend.delete_item(table_name, key)
                else:
                    backend.put_item(table_name, attributes)
            raise

    return transact


class _CachingBoto3:
    """Stands in for the `boto3` module inside moto's interpreter: one client per service and region."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, *, service_name: str, region_name: str, **kwargs: Any) -> Any:
        key = (service_name, region_name, str(kwargs.get("endpoint_url")))
        with self._lock:
            if key not in self._clients:
                make_client: Any = boto3.client  # the interpreter passes its own Config and endpoint
                self._clients[key] = make_client(service_name=service_name, region_name=region_name, **kwargs)
            return self._clients[key]


def _post_json(url: str, payload: dict[str, Any]) -> None:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"refusing a non-loopback URL: {url}")
    request = urllib.request.Request(  # noqa: S310 - checked above: loopback http only
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()
