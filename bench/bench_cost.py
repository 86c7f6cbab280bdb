"""What one request costs on each path, priced from what the local stack actually served.

N requests go through each path on one local stack: the queue (SendMessage -> consumer -> the queue
workflow, Express, one execution per SQS batch), the API (`POST /v1/invoke`, SigV4, through the local
API Gateway) and a batch file of N lines; beside them the baseline, a minimal API Gateway + Lambda proxy
making the same Bedrock call (bench/baseline/proxy.py, run by the same local Lambda service). For each
path the meter counts every billable unit from the stack's usage log (`xpi_tools.local.usage`: each AWS
call per principal, each function invocation with its measured duration and the template's memory,
DynamoDB capacity sized from the items, S3's KMS requests, EventBridge chunks, non-empty receives) and
from the Step Functions executions (their histories for Standard transitions; for Express, one request
per execution and its duration rounded up to the 100 ms Step Functions bills, at 64 MB), and prices
them with bench/prices/govcloud.yaml. What requests share (an Express execution, the poller's receive
and delete of a batch) is divided by the requests the path carried. Model tokens are left out: they are
the same on every path.

What is not the request's: the benchmark's own calls (the operator's reads of queues, tables and
executions) are left out, except the producer's own SendMessage (queue path) and the batch file's
PutObject (batch path). An empty long poll of the pollers is their idle cost, not a request's: only
receives that returned messages count. The baseline's API Gateway request is counted as one per request
(it is invoked through the Lambda API, as the local API Gateway invokes xpi's).

    .venv/bin/python bench/bench_cost.py [--requests 20] [--paths queue,api,batch,baseline]
"""

import argparse
import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
from _stack import ROOT, StackDriver, start_stack
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from xpi_tools.cost import (
    UNITS,
    Price,
    Units,
    add,
    cost_per_million,
    express_usage,
    load_prices,
    per_request,
    standard_transitions,
    units_from_usage,
    unpriced,
)
from xpi_tools.local.principals import OPERATOR_USER
from xpi_tools.local.stack import LOCAL_CREDENTIALS, LocalStack
from xpi_tools.local.usage import read_usage

PRICES = ROOT / "bench" / "prices" / "govcloud.yaml"
PROMPT = "Summarise the benefits of lineage in one paragraph."
BASELINE_MEMORY_MB = 128
BASELINE_DEPENDENCIES = ("boto3", "botocore", "jmespath", "dateutil", "s3transfer", "urllib3", "six.py")
WARMUP = 10  # unmeasured requests per path first: every runtime process started (cold starts are
# the subject of a benchmark of their own): one whole SQS batch, whose Express run's Map starts up to 10
# process steps at once (MaxConcurrency), each on its own runtime with its own caches to fill
QUIET_S = 2.0  # the usage log unchanged this long, and no execution running: the path is done


class CostBench:
    def __init__(self, stack: LocalStack) -> None:
        assert stack.endpoints is not None
        self.stack = stack
        self.endpoints = stack.endpoints
        self.outputs = stack.endpoints.outputs
        self.usage_log = Path(stack.endpoints.usage_log)
        self.session = boto3.Session(
            region_name=stack.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        self.sfn = self.client("stepfunctions")
        self.sqs = self.client("sqs")
        # the principal the IAM layer logs for the operator's keys, and its aws:userid (batch prefix)
        self.operator = self.client("iam").get_user(UserName=OPERATOR_USER)["User"]["Arn"]
        self.operator_id = self.client("sts").get_caller_identity()["UserId"]
        self.state_machines = [
            self.outputs["StateMachineArn"],
            self.outputs["BatchStateMachineArn"],
            self.outputs["QueueStateMachineArn"],
        ]
        self._baseline_name = ""
        self.executions_run: dict[str, int] = {}

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoints.aws)  # type: ignore[call-overload]

    # ------------------------------------------------------------------ measuring one path
    def measure(
        self,
        run: Callable[[], int],
        producer: Callable[[Mapping[str, Any]], bool],
        quiet_timeout_s: float = 300,
    ) -> tuple[Units, int]:
        """Runs a path; the units it caused and the number of requests it carried (the work it left
        behind waited for up to `quiet_timeout_s`)."""
        before = self.executions()
        offset = self.usage_log.stat().st_size
        requests = run()
        self.wait_quiet(offset, quiet_timeout_s)
        lines, _ = read_usage(self.usage_log, offset)

        def excluded(line: Mapping[str, Any]) -> bool:
            return line.get("principal") == self.operator and not producer(line)

        units = units_from_usage(lines, excluded=excluded)
        started = self.executions() - before
        for arn in started:
            add(units, self.execution_units(arn))
        self.executions_run[run.__qualname__.split(".")[1]] = len(started)
        return units, requests

    def executions(self) -> set[str]:
        arns: set[str] = set()
        for machine in self.state_machines:
            for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
                arns.update(execution["executionArn"] for execution in page["executions"])
        return arns

    def execution_units(self, arn: str) -> Units:
        """What the execution was billed: an Express one by its request and measured duration (moto
        keeps its start and stop, as AWS's logs would), a Standard one by its transitions."""
        execution = self.sfn.describe_execution(executionArn=arn)
        machine = execution["stateMachineArn"]
        if self.sfn.describe_state_machine(stateMachineArn=machine)["type"] == "EXPRESS":
            return express_usage((execution["stopDate"] - execution["startDate"]).total_seconds())
        events: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events.extend(page["events"])
        return {"states_transitions": standard_transitions(events)}

    def wait_quiet(self, offset: int, timeout_s: float = 300) -> None:
        """Until no line but the pollers' receives and the benchmark's own calls has been written for a
        while, and no execution runs. The log is read on from where the last look ended: rereading it
        whole (a 10,000-line batch writes hundreds of thousands of lines) would cost the stack's CPU."""
        deadline = time.monotonic() + timeout_s
        since = time.monotonic()
        while time.monotonic() < deadline:
            lines, offset = read_usage(self.usage_log, offset)
            if any(not self._idle(line) for line in lines):
                since = time.monotonic()
            elif time.monotonic() - since >= QUIET_S and not self.running():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not go quiet within {timeout_s:g} s")

    def _idle(self, line: Mapping[str, Any]) -> bool:
        if line.get("kind") == "call" and line.get("action") == "sqs:ReceiveMessage":
            return True
        return line.get("kind") != "lambda" and line.get("principal") == self.operator

    def running(self) -> bool:
        return any(
            self.sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING", maxResults=1)[
                "executions"
            ]
            for machine in self.state_machines
        )

    # ------------------------------------------------------------------ the paths
    def queue(self, count: int) -> tuple[Units, int]:
        driver = StackDriver(self.stack)
        queue_url = self.outputs["RequestsQueueUrl"]
        queue_arn = self.outputs["RequestsQueueArn"]

        def run() -> int:
            ids = [f"cost-{uuid.uuid4().hex[:16]}" for _ in range(count)]
            for request_id in ids:  # one producer, one request per message
                driver.sent_at[request_id] = time.perf_counter()
                self.sqs.send_message(
                    QueueUrl=queue_url,
                    MessageBody=json.dumps({"request_id": request_id, "model": "default", "prompt": PROMPT}),
                )
            driver.wait(ids, timeout_s=600)
            return count

        try:
            return self.measure(run, lambda line: _is_call(line, "sqs:SendMessage", queue_arn))
        finally:
            driver.close()

    def api(self, count: int) -> tuple[Units, int]:
        keys = self.endpoints.api_credentials["operator"]
        credentials = Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"])

        def run() -> int:
            for _ in range(count):
                status, body = _post(
                    self.endpoints.api + "/v1/invoke",
                    {"model": "default", "prompt": PROMPT},
                    credentials,
                    self.stack.region,
                )
                if status != 200:
                    raise RuntimeError(f"POST /v1/invoke answered {status}: {body}")
            return count

        return self.measure(run, lambda line: False)

    def batch(self, count: int) -> tuple[Units, int]:
        s3 = self.client("s3")
        table = self.session.resource("dynamodb", endpoint_url=self.endpoints.aws).Table(
            self.outputs["BatchTableName"]
        )
        bucket = self.outputs["BatchInputBucketName"]

        def run() -> int:
            from xpi.domain.batch import batch_id_for

            key = f"incoming/{self.operator_id}/cost-{uuid.uuid4().hex[:8]}.jsonl"  # the uploader's prefix
            body = b"".join(json.dumps({"prompt": f"{PROMPT} (#{n})"}).encode() + b"\n" for n in range(count))
            etag = s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"xpi-model": "default"})["ETag"]
            batch_id = batch_id_for(bucket, key, etag)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                item = table.get_item(Key={"batch_id": batch_id, "line": 0}, ConsistentRead=True).get("Item")
                if item and item.get("state") == "COMPLETED":
                    return count
                if item and item.get("state") == "FAILED":
                    raise RuntimeError(f"the batch failed: {item}")
                time.sleep(0.5)
            raise RuntimeError("the batch did not finish")

        return self.measure(run, lambda line: _is_call(line, "s3:PutObject", f"arn:*:s3:::{bucket}/"))

    def baseline(self, count: int) -> tuple[Units, int]:
        name = self.deploy_baseline()
        lambda_api = self.client("lambda")
        event = {"httpMethod": "POST", "path": "/v1/invoke", "body": json.dumps({"prompt": PROMPT})}

        def run() -> int:
            for _ in range(count):
                answer = lambda_api.invoke(FunctionName=name, Payload=json.dumps(event).encode())
                if answer.get("FunctionError"):
                    raise RuntimeError(f"the baseline failed: {answer['Payload'].read()!r}")
            return count

        units, requests = self.measure(run, lambda line: False)
        add(units, {"apigateway_requests": requests})  # its API Gateway in front, one request each
        return units, requests

    def deploy_baseline(self) -> str:
        """The proxy function, with boto3 bundled as xpi's functions bundle it, and 128 MB."""
        if self._baseline_name:
            return self._baseline_name
        secret = self.commercial_keys()
        iam = self.client("iam")
        role_name = f"xpi-cost-baseline-{uuid.uuid4().hex[:6]}"
        role_arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        name = f"xpi-cost-baseline-{uuid.uuid4().hex[:6]}"
        self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role_arn,
            Handler="proxy.handler",
            Code={"ZipFile": _baseline_zip()},
            MemorySize=BASELINE_MEMORY_MB,
            Timeout=30,
            Architectures=[self.architecture()],
            Environment={
                "Variables": {
                    "BASELINE_BEDROCK_ENDPOINT": self.endpoints.bedrock,
                    "BASELINE_BEDROCK_REGION": self.endpoints.bedrock_region,
                    "BASELINE_BEDROCK_KEY_ID": secret["aws_access_key_id"],
                    "BASELINE_BEDROCK_SECRET": secret["aws_secret_access_key"],
                    "BASELINE_MODEL_ID": "us.amazon.nova-lite-v1:0",
                }
            },
        )
        self._baseline_name = name
        return name

    def architecture(self) -> str:
        function = self.endpoints.resources["InvokeModelFunction"]
        return str(
            self.client("lambda").get_function_configuration(FunctionName=function)["Architectures"][0]
        )

    def commercial_keys(self) -> dict[str, str]:
        """Read as the invoke function's role: the secret's policy lets no other principal read it."""
        role = self.endpoints.function_credentials["InvokeModelFunction"]
        client = boto3.client(
            "secretsmanager",
            endpoint_url=self.endpoints.aws,
            region_name=self.stack.region,
            aws_access_key_id=role["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=role["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=role["AWS_SESSION_TOKEN"],
        )
        secret = client.get_secret_value(SecretId=self.outputs["CommercialCredentialsSecretArn"])[
            "SecretString"
        ]
        return dict(json.loads(secret))


def _is_call(line: Mapping[str, Any], action: str, resource: str) -> bool:
    if line.get("kind") != "call" or line.get("action") != action:
        return False
    named = str(line.get("resource") or "")
    if resource.startswith("arn:*:s3:::"):
        return named.split(":::", 1)[-1].startswith(resource.split(":::", 1)[1])
    return named == resource


def _post(url: str, body: Any, credentials: Credentials, region: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    request = AWSRequest(
        method="POST", url=url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    prepared = request.prepare()
    outgoing = urllib.request.Request(
        prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers.items())
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _baseline_zip() -> bytes:
    build = ROOT / ".aws-sam" / "build" / "InvokeModelFunction"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(ROOT / "bench" / "baseline" / "proxy.py", "proxy.py")
        for dependency in BASELINE_DEPENDENCIES:
            path = build / dependency
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                if "__pycache__" not in file.parts:
                    archive.write(file, file.relative_to(build).as_posix())
    return buffer.getvalue()


# ---------------------------------------------------------------------- the table
def table(results: Mapping[str, tuple[Units, int]], prices: Mapping[str, Price]) -> str:
    paths = list(results)
    per = {path: per_request(units, requests) for path, (units, requests) in results.items()}
    dollars = {path: cost_per_million(per[path], prices) for path in paths}
    rows = [unit for unit in UNITS if any(per[path].get(unit) for path in paths)]
    width = {path: max(9, len(path) + 5) for path in paths}
    head = f"| {'unit':<36} |" + "".join(f" {path + ' /req':>{width[path]}} | {'$/M':>8} |" for path in paths)
    rule = "|" + "-" * 38 + "|" + "".join("-" * (width[path] + 2) + "|" + "-" * 10 + "|" for path in paths)
    lines = [head, rule]
    for unit in rows:
        cells = "".join(
            f" {per[path].get(unit, 0):>{width[path]}.4g} | {dollars[path].get(unit, 0):>8.2f} |"
            for path in paths
        )
        lines.append(f"| {UNITS[unit]:<36} |{cells}")
    totals = {path: sum(dollars[path].values()) for path in paths}
    cells = "".join(f" {'':>{width[path]}} | {totals[path]:>8.2f} |" for path in paths)
    lines.append(f"| {'total, $ per million requests':<36} |{cells}")
    if totals.get("baseline"):
        cells = "".join(
            f" {'':>{width[path]}} | {totals[path] / totals['baseline']:>7.1f}x |" for path in paths
        )
        lines.append(f"| {'x the baseline':<36} |{cells}")
    for path in paths:
        missing = unpriced(per[path], prices)
        if missing:
            lines.append(f"{path}: counted but not priced: {', '.join(missing)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--paths", default="queue,api,batch,baseline")
    args = parser.parse_args()
    prices = load_prices(PRICES)
    stack = start_stack()
    try:
        bench = CostBench(stack)
        runs: dict[str, Callable[[int], tuple[Units, int]]] = {
            "queue": bench.queue,
            "api": bench.api,
            "batch": bench.batch,
            "baseline": bench.baseline,
        }
        chosen = args.paths.split(",")
        for path in chosen:
            runs[path](WARMUP)
        results: dict[str, tuple[Units, int]] = {}
        for path in chosen:
            results[path] = runs[path](args.requests)
    finally:
        stack.stop()
    print(
        f"{args.requests} requests per path, after {WARMUP} unmeasured ones; "
        f"prices: {PRICES.relative_to(ROOT)}, $ per million requests, model tokens excluded"
    )
    print(table(results, prices))
    if "queue" in bench.executions_run:
        print(
            f"queue: {bench.executions_run['queue']} Express execution(s) for {args.requests} requests "
            "(one per SQS batch); their requests and GB-s are divided by the requests"
        )


if __name__ == "__main__":
    main()
