"""The baseline bench/bench_cost.py prices xpi against: the design xpi replaces, a minimal API Gateway +
Lambda proxy that hands the caller's prompt to Bedrock Converse and returns the answer. No queue, no
workflow, no lineage, no classification, no payload objects: one function, one model call."""

import json
import os
from typing import Any

import boto3

_client = boto3.client(
    "bedrock-runtime",
    endpoint_url=os.environ["BASELINE_BEDROCK_ENDPOINT"],
    region_name=os.environ["BASELINE_BEDROCK_REGION"],
    aws_access_key_id=os.environ["BASELINE_BEDROCK_KEY_ID"],
    aws_secret_access_key=os.environ["BASELINE_BEDROCK_SECRET"],
)


def handler(event: dict[str, Any], _context: object) -> dict[str, Any]:
    request = json.loads(event["body"])
    answer = _client.converse(
        modelId=os.environ["BASELINE_MODEL_ID"],
        messages=[{"role": "user", "content": [{"text": request["prompt"]}]}],
    )
    text = answer["output"]["message"]["content"][0]["text"]
    return {"statusCode": 200, "body": json.dumps({"output": text, "usage": answer["usage"]})}
