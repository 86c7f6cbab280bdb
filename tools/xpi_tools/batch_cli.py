"""`xpi batch status ID`: a batch's status item (counts, state, results file), for operators.

The table is found from --table, else the --stack's `BatchTableName` output, else the running local
stack's state file. boto3 honours AWS_ENDPOINT_URL, so the same command reads the local stack or AWS.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import boto3
from xpi.adapters import aws

DEFAULT_STATE_FILE = Path(".xpi/local/stack.json")
COUNTS = ("total", "done", "completed", "blocked", "failed", "invalid", "released")


def _session_and_table(args: argparse.Namespace) -> tuple[Any, str, str | None]:
    """(boto3 session, table name, endpoint url or None)."""
    if args.table:
        return boto3.Session(), args.table, None
    if args.stack:
        session = boto3.Session()
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return session, outputs["BatchTableName"], None
    state_file = Path(args.state_file)
    if not state_file.exists():
        raise SystemExit("xpi batch: give --table or --stack, or start the local stack (xpi local up)")
    state = json.loads(state_file.read_text(encoding="utf-8"))
    from xpi_tools.local.stack import LOCAL_CREDENTIALS

    session = boto3.Session(
        region_name=state["region"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return session, state["outputs"]["BatchTableName"], state["aws"]


def status(args: argparse.Namespace) -> int:
    session, table_name, endpoint = _session_and_table(args)
    table = session.resource("dynamodb", endpoint_url=endpoint).Table(table_name)
    item = table.get_item(Key={"batch_id": args.batch_id, "line": 0}, ConsistentRead=True).get("Item")
    if not item:
        print(f"xpi batch: no batch {args.batch_id} in {table_name}", file=sys.stderr)
        return 1
    shown = {k: aws.plain(v) for k, v in item.items() if k not in ("task_token", "line")}
    if args.json:
        print(json.dumps(shown, indent=2, sort_keys=True, default=str))
        return 0
    print(f"batch    {shown['batch_id']}  {shown.get('state', '?')}")
    print(f"source   {shown.get('source_uri', '')}")
    print("counts   " + "  ".join(f"{name} {shown.get(name, 0)}" for name in COUNTS))
    print(
        f"usage    input_tokens {shown.get('input_tokens', 0)}  output_tokens {shown.get('output_tokens', 0)}"
        f"  estimated_cost_usd {shown.get('estimated_cost_usd', 0)}"
    )
    for name in ("started_at", "finished_at", "results_uri", "reason"):
        if shown.get(name):
            print(f"{name:<8} {shown[name]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpi batch", description="Batch files.")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="a batch's counts, state and results file")
    show.add_argument("batch_id")
    show.add_argument("--table", help="the batch table's name (the stack's BatchTableName output)")
    show.add_argument("--stack", help="read BatchTableName from this CloudFormation stack's outputs")
    show.add_argument("--state-file", default=str(DEFAULT_STATE_FILE), help="the local stack's state file")
    show.add_argument("--json", action="store_true", help="the whole status item as JSON")
    args = parser.parse_args(argv)
    return status(args)


if __name__ == "__main__":
    raise SystemExit(main())
