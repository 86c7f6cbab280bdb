"""What template.yaml's alarms cover: every DLQ, every state machine, the Bedrock functions' errors and
throttles, the sync path's p95, and the XPI metrics the functions emit; all notify the encrypted topic."""

import json
from pathlib import Path
from typing import Any

import pytest
from xpi_tools.local.deploy import load_template

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def metric_refs(alarm: dict[str, Any]) -> list[tuple[str, str, str]]:
    properties = alarm["Properties"]
    metrics = [q["MetricStat"]["Metric"] for q in properties.get("Metrics", []) if "MetricStat" in q] or [
        properties
    ]
    return [(m["Namespace"], m["MetricName"], json.dumps(m["Dimensions"][0]["Value"])) for m in metrics]


def test_every_dlq_and_every_state_machine_has_an_alarm(template: dict[str, Any]) -> None:
    watched = {ref for alarm in alarms(template).values() for ref in metric_refs(alarm)}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::SQS::Queue" and logical_id.endswith("DLQ"):
            value = json.dumps({"Fn::GetAtt": [logical_id, "QueueName"]})
            assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", value) in watched, logical_id
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            assert ("AWS/States", "ExecutionsFailed", json.dumps({"Ref": logical_id})) in watched, logical_id


def test_the_functions_metrics_the_alarms_watch(template: dict[str, Any]) -> None:
    watched = {(ns, name) for alarm in alarms(template).values() for ns, name, _ in metric_refs(alarm)}
    for metric in ("DecisionBlock", "SecurityAlerts", "CredentialPastMaxAge", "CredentialRotationFailures"):
        assert ("XPI", metric) in watched
    for metric in ("Errors", "Invocations", "Throttles", "Duration"):
        assert ("AWS/Lambda", metric) in watched


def test_every_alarm_notifies_the_topic_encrypted_under_the_stack_key(template: dict[str, Any]) -> None:
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "XpiKey"}
    for logical_id, alarm in alarms(template).items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert alarm["Properties"]["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), logical_id
    statements = template["Resources"]["XpiKey"]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = next(s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"})
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert template["Resources"]["AlarmEmailSubscription"]["Condition"] == "SubscribeAlarmEmail"
