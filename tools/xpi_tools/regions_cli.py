"""`xpi regions takeover --region X`: the disaster-recovery step that ends the requests a region lost for
good left unended (docs/operations.md, "Disaster recovery", step 5).

Run it against the surviving region's stack once the lost region can no longer finish anything (its
stack gone, or fenced: see the runbook). It invokes the survivor's reaper with
`{"takeover_region": X}` until a run reports nothing more; the reaper ends each of X's ACCEPTED
requests in the lineage global table as FAILED (`RegionLost`) with its Inference Failed event, once.

The function is found from --function, else the --stack's `ReaperFunctionName` output, else the running
local stack's state file (--state-file). boto3 honours AWS_ENDPOINT_URL and AWS_REGION.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import boto3

DEFAULT_STATE_FILE = Path(".xpi/local/stack.json")
MAX_RUNS = 1000  # 100 requests a run (REAPER_MAX_ITEMS): 100,000 requests


def _session_and_function(args: argparse.Namespace) -> tuple[Any, str, str | None]:
    """(boto3 session, reaper function name, endpoint url or None)."""
    if args.function:
        return boto3.Session(), args.function, None
    if args.stack:
        session = boto3.Session()
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return session, outputs["ReaperFunctionName"], None
    state_file = Path(args.state_file)
    if not state_file.exists():
        raise SystemExit("xpi regions: give --function or --stack, or start the local stack (xpi local up)")
    state = json.loads(state_file.read_text(encoding="utf-8"))
    from xpi_tools.local.stack import LOCAL_CREDENTIALS

    session = boto3.Session(
        region_name=state["region"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return session, state["outputs"]["ReaperFunctionName"], state["aws"]


def take_over(lambda_client: Any, function: str, region: str) -> dict[str, Any]:
    """Invoke the reaper's takeover until nothing more is left: the totals of every run."""
    total: dict[str, Any] = {"region": region, "ended": [], "reported_late": [], "finished_meanwhile": []}
    started = time.monotonic()
    for run in range(1, MAX_RUNS + 1):
        response = lambda_client.invoke(
            FunctionName=function, Payload=json.dumps({"takeover_region": region}).encode()
        )
        report = json.loads(response["Payload"].read() or b"{}")
        if "FunctionError" in response:
            raise RuntimeError(f"the reaper's takeover failed: {report}")
        for name in ("ended", "reported_late", "finished_meanwhile"):
            total[name].extend(report.get(name, []))
        total["runs"] = run
        if not report.get("more"):
            break
    total["seconds"] = round(time.monotonic() - started, 3)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpi regions", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    takeover = commands.add_parser("takeover", help="end a lost region's unended requests in this one")
    takeover.add_argument("--region", required=True, help="the region declared lost, e.g. us-gov-west-1")
    takeover.add_argument("--function", help="the surviving stack's reaper function")
    takeover.add_argument("--stack", help="the surviving stack's name (its ReaperFunctionName output)")
    takeover.add_argument("--state-file", default=str(DEFAULT_STATE_FILE), help="a local stack's state")
    takeover.add_argument("--json", action="store_true", help="print the totals as JSON")
    args = parser.parse_args(argv)
    session, function, endpoint = _session_and_function(args)
    total = take_over(session.client("lambda", endpoint_url=endpoint), function, args.region)
    if args.json:
        print(json.dumps(total, indent=2))
    else:
        print(
            f"{args.region}: {len(total['ended'])} requests ended as RegionLost, "
            f"{len(total['reported_late'])} events published late, "
            f"{len(total['finished_meanwhile'])} final meanwhile; {total['runs']} runs, {total['seconds']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
