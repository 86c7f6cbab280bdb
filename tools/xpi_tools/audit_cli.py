"""`xpi audit verify [--from DAY --to DAY]`: check sealed lineage against its signed digests.

For each day: its digest from the digest bucket, its signature checked here with the signing key's
public key (kms:GetPublicKey, verified locally), its link to the day before's digest, then every
lineage record of the day recomputed and linked (xpi.domain.lineage_chain.verify_day). Every altered,
inserted, deleted or reordered record, and every missing or altered digest, is named. Exit status 0
when nothing is, 1 otherwise.

The stack is found from --stack (its outputs), else the running local stack's state file. boto3
honours AWS_ENDPOINT_URL, so the same command reads the local stack or AWS.
"""

import argparse
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from xpi.adapters import aws
from xpi.adapters.lineage_seal import DIGEST_PREFIX, digest_key
from xpi.adapters.lineage_store import BY_DAY_INDEX
from xpi.domain.lineage_verify import SIGNATURE_FIELDS, Sources, signature_valid, verify

DEFAULT_STATE_FILE = Path(".xpi/local/stack.json")
__all__ = ["SIGNATURE_FIELDS", "Sources", "aws_sources", "main", "sealed_days", "signature_valid", "verify"]


# ---------------------------------------------------------------------------------------------- AWS
def _stack(args: argparse.Namespace) -> tuple[Any, dict[str, str], str | None]:
    """(boto3 session, stack outputs, endpoint url or None)."""
    if args.stack:
        session = boto3.Session()
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        return session, {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}, None
    state_file = Path(args.state_file)
    if not state_file.exists():
        raise SystemExit("xpi audit: give --stack, or start the local stack (xpi local up)")
    state = json.loads(state_file.read_text(encoding="utf-8"))
    from xpi_tools.local.stack import LOCAL_CREDENTIALS

    session = boto3.Session(
        region_name=state["region"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return session, state["outputs"], state["aws"]


def aws_sources(session: Any, outputs: dict[str, str], endpoint: str | None) -> Sources:
    s3 = session.client("s3", endpoint_url=endpoint)
    kms = session.client("kms", endpoint_url=endpoint)
    table = session.resource("dynamodb", endpoint_url=endpoint).Table(outputs["LineageTableName"])
    bucket = outputs["LineageDigestBucketName"]

    def digest(day: date) -> dict[str, Any] | None:
        try:
            body = s3.get_object(Bucket=bucket, Key=digest_key(day))["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404", "AccessDenied"):
                return None
            raise
        document: dict[str, Any] = json.loads(body)
        return document

    def records(day: date) -> list[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "IndexName": BY_DAY_INDEX,
            "KeyConditionExpression": "#day = :day",
            "ExpressionAttributeNames": {"#day": "day"},
            "ExpressionAttributeValues": {":day": day.isoformat()},
        }
        items: list[dict[str, Any]] = []
        while True:
            page = table.query(**arguments)
            items.extend(aws.plain(dict(item)) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    keys: dict[str, bytes] = {}

    def public_key(key_id: str) -> bytes:
        if key_id not in keys:
            keys[key_id] = kms.get_public_key(KeyId=key_id)["PublicKey"]
        return keys[key_id]

    return Sources(digest, records, public_key, outputs["LineageSigningKeyArn"])


def sealed_days(args: argparse.Namespace, s3: Any, bucket: str) -> tuple[date, date]:
    if args.from_day and args.to_day:
        return date.fromisoformat(args.from_day), date.fromisoformat(args.to_day)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=DIGEST_PREFIX).get("Contents", [])
    sealed = sorted(obj["Key"][len(DIGEST_PREFIX) : -len(".json")] for obj in listed)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    first = date.fromisoformat(args.from_day or (sealed[0] if sealed else yesterday.isoformat()))
    last = date.fromisoformat(args.to_day or (sealed[-1] if sealed else yesterday.isoformat()))
    return first, last


def run_verify(args: argparse.Namespace) -> int:
    session, outputs, endpoint = _stack(args)
    first, last = sealed_days(
        args, session.client("s3", endpoint_url=endpoint), outputs["LineageDigestBucketName"]
    )
    checked, problems = verify(aws_sources(session, outputs, endpoint), first, last)
    if args.json:
        listed = [p.__dict__ for p in problems]
        print(
            json.dumps(
                {"from": first.isoformat(), "to": last.isoformat(), "records": checked, "problems": listed}
            )
        )
    else:
        for problem in problems:
            who = f" {problem.request_id}" if problem.request_id else ""
            print(f"{problem.day} {problem.kind.upper()}{who}: {problem.detail}")
        verdict = "intact" if not problems else f"{len(problems)} problem(s)"
        print(f"xpi audit verify: {first}..{last}, {checked} lineage records: {verdict}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpi audit", description="Tamper-evident lineage.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="check sealed lineage against its signed digests")
    check.add_argument("--from", dest="from_day", help="first day (YYYY-MM-DD; default: the first digest)")
    check.add_argument("--to", dest="to_day", help="last day (YYYY-MM-DD; default: the last digest)")
    check.add_argument("--stack", help="read the stack's outputs from CloudFormation")
    check.add_argument("--state-file", default=str(DEFAULT_STATE_FILE), help="the local stack's state file")
    check.add_argument("--json", action="store_true", help="the result as JSON")
    args = parser.parse_args(argv)
    return run_verify(args)


if __name__ == "__main__":
    sys.exit(main())
