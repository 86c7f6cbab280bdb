"""`xpi demo`: the whole pipeline offline, as a producer and an auditor see it.

Starts the local stack, drops the sample requests of events/requests/ on the requests queue, waits
for one result event per request on the example subscriber queue, prints each result beside its
lineage record from DynamoDB; then uploads the sample batch file of events/batch/files/ (with its
manifest) to the batch input bucket, waits for its `Batch Completed` event and prints its results
file; rotates the commercial access key once (Secrets Manager's RotateSecret, the rotation function
against the emulator's commercial IAM) and sends one more request with the new key; runs the
configuration checks and prints today's compliance report (the pass rate and every check's result),
saved whole under test-artifacts/compliance/; and stops everything.
"""

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from xpi.domain.batch import batch_id_for, manifest_key_for

from xpi_tools.checkout import project_root
from xpi_tools.local.stack import LOCAL_CREDENTIALS, LocalStack

RESULT_TIMEOUT_S = 120
BATCH_SAMPLE = Path("events/batch/files/claims-2026-11-27.jsonl")


def _clients(stack: LocalStack) -> tuple[Any, Any, Any, str]:
    assert stack.endpoints is not None
    session = boto3.Session(
        region_name=stack.region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return (
        session.client("sqs", endpoint_url=stack.endpoints.aws),
        session.resource("dynamodb", endpoint_url=stack.endpoints.aws),
        session.client("s3", endpoint_url=stack.endpoints.aws),
        session.client("sts", endpoint_url=stack.endpoints.aws).get_caller_identity()["UserId"],
    )


def send_samples(sqs: Any, queue_url: str, samples: list[Path], run_id: str) -> dict[str, str]:
    """Send each sample with a fresh request id; returns request id -> sample name."""
    sent = {}
    for number, path in enumerate(samples, start=1):
        body = json.loads(path.read_text(encoding="utf-8"))
        body["request_id"] = f"demo-{run_id}-{number}"
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
        sent[body["request_id"]] = path.stem
    return sent


def collect_results(
    sqs: Any, queue_url: str, expected: set[str], timeout_s: float, key: str = "request_id"
) -> dict[str, dict[str, Any]]:
    """The result events whose detail[key] is expected (request ids, or batch ids for `Batch *`)."""
    results: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while expected - results.keys() and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in messages.get("Messages", []):
            event = json.loads(message["Body"])
            found = event.get("detail", {}).get(key)
            if found in expected and (key != "batch_id" or event["detail-type"].startswith("Batch ")):
                results[found] = event
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return results


def run_batch(  # noqa: PLR0917 - the demo's clients and this run's names
    sqs: Any, s3: Any, outputs: dict[str, str], root: Path, run_id: str, uploader: str
) -> bool:
    """Upload the sample batch file and its manifest; print its completion event and results file."""
    # Each uploader writes under its own aws:userid (the bucket policy's rule; results come back under it).
    bucket = outputs["BatchInputBucketName"]
    key = f"incoming/{uploader}/demo-{run_id}/{BATCH_SAMPLE.name}"
    manifest = root / BATCH_SAMPLE.parent / Path(manifest_key_for(BATCH_SAMPLE.name)).name
    s3.put_object(Bucket=bucket, Key=manifest_key_for(key), Body=manifest.read_bytes())
    etag = s3.put_object(Bucket=bucket, Key=key, Body=(root / BATCH_SAMPLE).read_bytes())["ETag"]
    batch_id = batch_id_for(bucket, key, etag)
    print(f"Uploaded {BATCH_SAMPLE} to s3://{bucket}/{key} (batch {batch_id}); waiting for its event...")
    started = time.perf_counter()
    events = collect_results(sqs, outputs["SubscriberQueueUrl"], {batch_id}, RESULT_TIMEOUT_S, "batch_id")
    event = events.get(batch_id)
    if event is None:
        print(f"  no Batch event within {RESULT_TIMEOUT_S} s (`xpi batch status {batch_id}` shows why)")
        return False
    detail = event["detail"]
    print(
        f"  {event['detail-type']} in {time.perf_counter() - started:.1f} s: total {detail.get('total')}, "
        f"completed {detail.get('completed')}, blocked {detail.get('blocked')}, "
        f"failed {detail.get('failed')}, "
        f"tokens {detail.get('input_tokens')}/{detail.get('output_tokens')}, "
        f"estimated cost USD {detail.get('estimated_cost_usd')}"
    )
    if "results_uri" not in detail:
        print(f"  reason: {detail.get('reason')}")
        return False
    print(f"  {detail['results_uri']}:")
    body = s3.get_object(Bucket=bucket, Key=f"results/{uploader}/{batch_id}.jsonl")["Body"]
    for row in map(json.loads, body.iter_lines()):
        decision = (row.get("classification") or {}).get("decision", "-")
        said = (row.get("output") or {}).get("text") or (row.get("error") or {}).get("message", "")
        print(f"    line {row['line']}  {row['status']:<9}  {decision:<6}  {said[:90]!r}")
    return bool(event["detail-type"] == "Batch Completed")


def rotate_once(stack: LocalStack, sqs: Any, dynamodb: Any, run_id: str) -> bool:
    """One rotation of the commercial key, then one request signed with the new key."""
    from xpi_tools.emulator import EmulatorControl

    assert stack.endpoints is not None
    outputs = stack.endpoints.outputs
    secret_arn = outputs["CommercialCredentialsSecretArn"]
    session = boto3.Session(
        region_name=stack.region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    secrets = session.client("secretsmanager", endpoint_url=stack.endpoints.aws)
    control = EmulatorControl(stack.endpoints.emulator_control)

    def state() -> tuple[str, list[str]]:
        stages = secrets.describe_secret(SecretId=secret_arn)["VersionIdsToStages"]
        current = next(v for v, labels in stages.items() if "AWSCURRENT" in labels)
        return current, ["..." + key[-4:] for key in control.access_key_ids()]

    version, keys = state()
    print(f"Rotating the commercial access key (secret version {version[:8]}, commercial keys {keys})...")
    started = time.perf_counter()
    secrets.rotate_secret(SecretId=secret_arn)
    version, keys = state()
    print(
        f"  createSecret, setSecret, testSecret (a Bedrock call), finishSecret in "
        f"{time.perf_counter() - started:.1f} s: version {version[:8]} current, commercial keys {keys}"
    )
    request_id = f"demo-{run_id}-after-rotation"
    body = {"request_id": request_id, "model": "default", "prompt": "Hello after the rotation"}
    sqs.send_message(QueueUrl=outputs["RequestsQueueUrl"], MessageBody=json.dumps(body))
    result = collect_results(sqs, outputs["SubscriberQueueUrl"], {request_id}, RESULT_TIMEOUT_S).get(
        request_id
    )
    item = (
        dynamodb.Table(outputs["LineageTableName"]).get_item(Key={"request_id": request_id}).get("Item", {})
    )
    status = result["detail-type"] if result else "no result event"
    print(
        f"  {request_id}: {status}, signed with credential version {str(item.get('credential_version'))[:8]}"
    )
    return result is not None and result["detail-type"] == "Inference Completed"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell[:width].ljust(width) for cell, width in zip(cells, widths, strict=True))


def _elapsed_ms(steps: dict[str, str]) -> str:
    if "received_at" not in steps or "completed_at" not in steps:
        return "-"
    started, ended = (
        datetime.fromisoformat(steps[k].replace("Z", "+00:00")) for k in ("received_at", "completed_at")
    )
    return f"{(ended - started).total_seconds() * 1000:.0f}"


def print_table(
    sent: dict[str, str], results: dict[str, dict[str, Any]], lineage: dict[str, dict[str, Any]]
) -> None:
    headers = [
        "sample",
        "result event",
        "decision",
        "categories",
        "model",
        "tokens in/out",
        "cost USD",
        "lineage",
        "end-to-end ms",
    ]
    widths = [22, 19, 8, 40, 44, 13, 10, 9, 13]
    print(_row(headers, widths))
    print(_row(["-" * w for w in widths], widths))
    for request_id, sample in sent.items():
        event = results.get(request_id, {})
        detail = event.get("detail", {})
        item = lineage.get(request_id, {})
        usage = detail.get("usage") or {}
        model = detail.get("model") or {}
        categories = (item.get("classification") or {}).get("categories") or {}
        print(
            _row(
                [
                    sample,
                    event.get("detail-type", "(none)"),
                    (detail.get("classification") or {}).get("decision", "-"),
                    ", ".join(f"{name}:{int(count)}" for name, count in categories.items()) or "-",
                    model.get("resolved") or model.get("requested", "-"),
                    f"{usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)}",
                    f"{float(item['estimated_cost_usd']):.6f}" if "estimated_cost_usd" in item else "-",
                    str(item.get("status", "(none)")),
                    _elapsed_ms(item.get("steps", {})),
                ],
                widths,
            )
        )
    print()
    for request_id, sample in sent.items():
        detail = results.get(request_id, {}).get("detail", {})
        item = lineage.get(request_id, {})
        text = (detail.get("output") or {}).get("text") or ""
        error = detail.get("error") or {}
        print(f"{sample}  request_id={request_id}")
        print(
            f"  lineage: caller {item.get('caller_principal', '-')}, source {item.get('source', '-')}, "
            f"request hmac {str(item.get('request_hmac', '-'))[:12]}.., response hmac "
            f"{str(item.get('response_hmac', '-'))[:12]}.., credential version "
            f"{str(item.get('credential_version', '-'))[:8]}.., steps {', '.join(item.get('steps', {}))}"
        )
        if text:
            print(f"  output:  {text[:160]!r}")
        if error:
            print(f"  error:   {error.get('code')}: {error.get('message', '')[:100]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpi demo", description=__doc__)
    parser.add_argument("--samples", default="events/requests", help="folder of request JSON files")
    args = parser.parse_args(argv)

    root = project_root()
    samples = sorted((root / args.samples).glob("*.json"))
    if not samples:
        raise SystemExit(f"xpi demo: no sample requests in {root / args.samples}")
    print("Starting the local stack (moto + Lambda runtimes + commercial Bedrock emulator)...", flush=True)
    with LocalStack(root) as stack:
        assert stack.endpoints is not None
        print(
            f"  up in {stack.timings['up_s']:.1f} s; AWS API at {stack.endpoints.aws}, "
            f"Bedrock emulator at {stack.endpoints.bedrock}",
            flush=True,
        )
        if stack.endpoints.dashboard:  # the dashboard (local signing proxy) and the SigV4 API
            print(f"  dashboard: {stack.endpoints.dashboard}  API: {stack.endpoints.api}", flush=True)
        sqs, dynamodb, s3, uploader = _clients(stack)
        outputs = stack.endpoints.outputs
        run_id = str(int(time.time()))
        sent = send_samples(sqs, outputs["RequestsQueueUrl"], samples, run_id)
        print(
            f"Sent {len(sent)} requests to the requests queue; waiting for their result events...", flush=True
        )
        started = time.perf_counter()
        results = collect_results(sqs, outputs["SubscriberQueueUrl"], set(sent), RESULT_TIMEOUT_S)
        print(f"  {len(results)} of {len(sent)} result events in {time.perf_counter() - started:.1f} s\n")
        table = dynamodb.Table(outputs["LineageTableName"])
        lineage = {rid: table.get_item(Key={"request_id": rid}).get("Item", {}) for rid in sent}
        print_table(sent, results, lineage)
        print()
        batch_done = run_batch(sqs, s3, outputs, root, run_id, uploader)
        print()
        rotated = rotate_once(stack, sqs, dynamodb, run_id)
        print()
        reported = compliance_report(stack, root)
        print()
        compared = compare_models(stack, root)
    print("\nLocal stack stopped.")
    return 0 if len(results) == len(sent) and batch_done and rotated and reported and compared else 1


def compare_models(stack: LocalStack, root: Path) -> bool:
    """`xpi compare` on a small prompt set: a commercial model and the GovCloud-native one, side by side."""
    from botocore.credentials import Credentials

    from xpi_tools.compare import compare, signed_invoke

    assert stack.endpoints is not None
    caller = stack.endpoints.api_credentials["caller2"]
    invoke = signed_invoke(
        stack.endpoints.api,
        stack.region,
        Credentials(caller["aws_access_key_id"], caller["aws_secret_access_key"]),
    )
    models = ["default", "govcloud"]
    print(f"Comparing {', '.join(models)} on events/compare/prompts.jsonl (xpi compare)...", flush=True)
    saved = root / "test-artifacts" / "compare" / "demo.json"  # what the dashboard's compare view shows
    print(compare(root / "events" / "compare" / "prompts.jsonl", models, invoke, output=saved))
    print(f"Saved the comparison to {saved.relative_to(root)} (the dashboard's compare view).")
    return True


def compliance_report(stack: LocalStack, root: Path) -> bool:
    """Run the configuration checker, print today's compliance report, save it as JSON, CSV and HTML."""
    from botocore.credentials import Credentials

    from xpi_tools.compliance_cli import Target, fetch, run_checks, summary

    assert stack.endpoints is not None
    operator = stack.endpoints.api_credentials["operator"]  # the API's operator principal signs the report
    session = boto3.Session(  # the account's local administrator invokes the checker
        region_name=stack.region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    target = Target(
        stack.endpoints.api,
        stack.region,
        Credentials(operator["aws_access_key_id"], operator["aws_secret_access_key"]),
        session,
        stack.endpoints.aws,
        stack.endpoints.outputs,
    )
    print("Running the configuration checks and fetching today's compliance report...", flush=True)
    run_checks(target)
    today = datetime.now(UTC).date().isoformat()
    folder = root / "test-artifacts" / "compliance"
    folder.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for answer in ("json", "csv", "html"):
        status, body = fetch(target, today, today, answer)
        if status != 200:
            print(f"  GET /v1/compliance/report answered {status}: {body[:200]}")
            return False
        (folder / f"report-{today}.{answer}").write_text(body, encoding="utf-8")
        report = json.loads(body) if answer == "json" else report
    print("\n".join(summary(report)))
    print(f"  saved: {folder}/report-{today}.json, .csv, .html")
    return True
