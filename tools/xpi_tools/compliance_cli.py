"""`xpi compliance report [--from DAY --to DAY] [--format json|csv|html] [--run-checks]`: the compliance
report of a stack (GET /v1/compliance/report, SigV4-signed), printed (the pass rate and every check's
result) or written whole.

The stack is found from --stack (its outputs: ApiUrl; the caller's own credentials sign, which need the
operator or auditor policy), else the running local stack's state file (signed as its operator).
--run-checks first runs the configuration checker (the Lambda function its schedule runs).
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

DEFAULT_STATE_FILE = Path(".xpi/local/stack.json")
REPORT = "/v1/compliance/report"


@dataclass(frozen=True)
class Target:
    api_url: str
    region: str
    credentials: Credentials
    session: Any  # boto3 session for the checker's invoke
    endpoint: str | None
    outputs: dict[str, str]


def fetch(target: Target, first: str | None, last: str | None, answer: str = "json") -> tuple[int, str]:
    """(status, body) of the report route, signed with the target's credentials."""
    query = {k: v for k, v in (("from", first), ("to", last), ("format", answer)) if v}
    request = AWSRequest(method="GET", url=f"{target.api_url.rstrip('/')}{REPORT}?{urlencode(query)}")
    SigV4Auth(target.credentials, "execute-api", target.region).add_auth(request)
    prepared = request.prepare()
    outgoing = urllib.request.Request(  # noqa: S310 - the stack's API URL
        prepared.url, method="GET", headers=dict(prepared.headers.items())
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=60) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def run_checks(target: Target) -> dict[str, Any]:
    """Run the configuration checker now (as its schedule would) and return its answer."""
    client = target.session.client("lambda", endpoint_url=target.endpoint)
    response = client.invoke(FunctionName=target.outputs["ComplianceCheckFunctionName"], Payload=b"{}")
    answer: dict[str, Any] = json.loads(response["Payload"].read())
    if "FunctionError" in response:
        raise RuntimeError(f"the configuration checker failed: {answer.get('errorType')}")
    return answer


def summary(report: dict[str, Any]) -> list[str]:
    """The pass rate, every check's result and the headline figures, as lines to print."""
    rate = report.get("pass_rate")
    lines = [
        f"Compliance report {report['from']} to {report['to']}: configuration checks pass rate "
        + ("not checked yet" if rate is None else f"{rate:.2f} %")
        + (f" (checked {report['checked_at']})" if report.get("checked_at") else "")
    ]
    for check in report.get("checks", []):
        rule = check.get("config_rule") or "-"
        lines.append(
            f"  {check['status']:<4}  {check['check']:<38} {rule:<42} "
            f"{check['failed']}/{check['evaluations']} failed  {' '.join(check['controls'])}"
        )
    for evaluation in report.get("evaluations", []):
        if evaluation["status"] == "FAIL":
            lines.append(
                f"        FAIL {evaluation['check']} {evaluation['resource']}: {evaluation['detail']}"
            )
    figures = {item["item"]: item["figures"] for item in report.get("items", [])}
    decisions = figures.get("requests_by_decision", {})
    tamper = figures.get("tamper_check", {})
    lines.append(
        f"  requests {decisions.get('total', 0)} {decisions.get('by_status', {})}, "
        f"decisions {decisions.get('by_decision', {})}, "
        f"security alerts {figures.get('security_alerts', {}).get('requests', 0)}, "
        f"callers {figures.get('callers', {}).get('count', 0)}"
    )
    verdict = (
        "intact" if tamper.get("intact") else ("PROBLEMS" if tamper.get("performed") else "not performed")
    )
    lines.append(f"  tamper check: {verdict} ({tamper.get('detail', '')})")
    return lines


def _target(args: argparse.Namespace) -> Target:
    if args.stack:
        session = boto3.Session()
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        found = session.get_credentials()
        if found is None:
            raise SystemExit("xpi compliance: no AWS credentials to sign with")
        frozen = found.get_frozen_credentials()
        credentials = Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)
        return Target(outputs["ApiUrl"], session.region_name, credentials, session, None, outputs)
    state_file = Path(args.state_file)
    if not state_file.exists():
        raise SystemExit("xpi compliance: give --stack, or start the local stack (xpi local up)")
    state = json.loads(state_file.read_text(encoding="utf-8"))
    from xpi_tools.local.stack import LOCAL_CREDENTIALS

    # The API as its operator principal; the checker's invoke as the account's local administrator.
    operator = state["api_credentials"]["operator"]
    session = boto3.Session(
        region_name=state["region"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    credentials = Credentials(operator["aws_access_key_id"], operator["aws_secret_access_key"])
    return Target(state["api"], state["region"], credentials, session, state["aws"], state["outputs"])


def run_report(args: argparse.Namespace) -> int:
    target = _target(args)
    if args.run_checks:
        run_checks(target)
    status, body = fetch(target, args.from_day, args.to_day, args.format)
    if status != 200:
        print(f"xpi compliance: the API answered {status}: {body}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(body, encoding="utf-8")
    if args.format == "json" and not args.output:
        print("\n".join(summary(json.loads(body))))
    elif not args.output:
        print(body)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpi compliance", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="the compliance report of a period")
    report.add_argument("--from", dest="from_day", help="first day (YYYY-MM-DD; default: 6 days before --to)")
    report.add_argument("--to", dest="to_day", help="last day (YYYY-MM-DD; default: today)")
    report.add_argument("--format", choices=["json", "csv", "html"], default="json")
    report.add_argument(
        "--output", help="write the report here (json: the whole document) instead of a summary"
    )
    report.add_argument("--run-checks", action="store_true", help="run the configuration checker first")
    report.add_argument("--stack", help="read the stack's outputs from CloudFormation")
    report.add_argument("--state-file", default=str(DEFAULT_STATE_FILE))
    report.set_defaults(run=run_report)
    args = parser.parse_args(argv)
    return int(args.run(args))
