"""The local stack's CloudWatch glue: EMF lines into PutMetricData data, and alarms evaluated as
CloudWatch evaluates them (statistics, percentiles, metric math, missing data)."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from xpi_tools.local.monitoring import (
    KEEP_DATA_S,
    Datapoint,
    LocalMonitoring,
    LogTail,
    aggregated,
    emf_metric_data,
    evaluate_alarm,
    evaluate_expression,
    notification,
    period_statistic,
    statistic,
)

NOW = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
SERVICE = frozenset({("service", "xpi")})


def emf(**metrics: Any) -> str:
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(NOW.timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": "XPI",
                        "Dimensions": [["service"]],
                        "Metrics": [{"Name": name, "Unit": "Count"} for name in metrics],
                    }
                ],
            },
            "service": "xpi",
            **metrics,
        }
    )


def point(
    name: str, value: float, seconds_ago: float = 1, dimensions: frozenset[tuple[str, str]] = SERVICE
) -> Datapoint:
    return Datapoint("XPI", name, dimensions, NOW - timedelta(seconds=seconds_ago), value)


def xpi_alarm(metric: str, threshold: float, **overrides: Any) -> dict[str, Any]:
    return {
        "AlarmName": "a",
        "AlarmArn": "arn:aws-us-gov:cloudwatch:us-gov-west-1:123456789012:alarm:a",
        "Namespace": "XPI",
        "MetricName": metric,
        "Dimensions": [{"Name": "service", "Value": "xpi"}],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
        "StateValue": "INSUFFICIENT_DATA",
        **overrides,
    }


class TestEmf:
    def test_an_emf_line_becomes_one_datum_per_metric_and_dimension_set(self) -> None:
        data = emf_metric_data(emf(DecisionBlock=1.0, SecurityAlerts=[1.0, 1.0]))

        assert [(ns, d["MetricName"], d["Values"]) for ns, d in data] == [
            ("XPI", "DecisionBlock", [1.0]),
            ("XPI", "SecurityAlerts", [1.0, 1.0]),
        ]
        assert data[0][1]["Dimensions"] == [{"Name": "service", "Value": "xpi"}]
        assert data[0][1]["Timestamp"] == NOW

    @pytest.mark.parametrize(
        "line", ["START RequestId: 1", '{"level": "INFO", "message": "x"}', '{"_aws": {}}', "{not json _aws"]
    )
    def test_other_lines_carry_no_metric(self, line: str) -> None:
        assert emf_metric_data(line) == []

    def test_the_tail_reads_only_complete_new_lines_and_skips_what_was_there(self, tmp_path: Path) -> None:
        old = tmp_path / "f-1.log"
        old.write_text("before\n")
        tail = LogTail(tmp_path)
        tail.start()
        with old.open("a") as file:
            file.write("one\ntw")
        (tmp_path / "g-1.log").write_text("new file\n")

        assert sorted(tail.new_lines()) == ["new file", "one"]
        with old.open("a") as file:
            file.write("o\n")
        assert list(tail.new_lines()) == ["two"]


class TestStatistics:
    def test_percentiles_are_nearest_rank(self) -> None:
        values = [float(v) for v in range(1, 101)]
        assert statistic("p95", values) == 95.0
        assert statistic("p50", [1.0, 2.0, 3.0]) == 2.0
        assert statistic("p99", [7.0]) == 7.0

    def test_the_basic_statistics(self) -> None:
        assert [
            statistic(s, [1.0, 3.0]) for s in ("Sum", "Average", "Minimum", "Maximum", "SampleCount")
        ] == [
            4.0,
            2.0,
            1.0,
            3.0,
            2.0,
        ]

    def test_metric_math_leaves_out_a_missing_term_or_a_division_by_zero(self) -> None:
        assert evaluate_expression("100 * errors / invocations", {"errors": 1, "invocations": 4}) == 25.0
        assert evaluate_expression("100 * errors / invocations", {"invocations": 4}) is None
        assert evaluate_expression("errors / invocations", {"errors": 0, "invocations": 0}) is None
        with pytest.raises(ValueError, match="metric math"):
            evaluate_expression("__import__('os')", {})


class TestAggregation:
    def test_values_of_a_series_in_one_second_become_one_statistic_values_datum(self) -> None:
        data = emf_metric_data(emf(DecisionBlock=1.0)) * 3 + emf_metric_data(emf(DecisionAllow=[2.0, 5.0]))

        [(_, block), (_, allow)] = aggregated(data)

        assert block["StatisticValues"] == {"SampleCount": 3.0, "Sum": 3.0, "Minimum": 1.0, "Maximum": 1.0}
        assert allow["StatisticValues"] == {"SampleCount": 2.0, "Sum": 7.0, "Minimum": 2.0, "Maximum": 5.0}
        assert block["Timestamp"] == NOW

    def test_lambda_duration_stays_single_values_for_its_percentiles(self) -> None:
        duration = {"MetricName": "Duration", "Dimensions": [], "Timestamp": NOW, "Value": 12.5}
        assert aggregated([("AWS/Lambda", duration)] * 2) == [("AWS/Lambda", duration)] * 2

    def test_statistics_of_aggregated_points_and_no_percentile_from_them(self) -> None:
        summed = Datapoint("XPI", "X", SERVICE, NOW, 7.0, count=2, minimum=2.0, maximum=5.0)
        single = point("X", 1.0)
        assert [
            period_statistic(s, [summed, single]) for s in ("Sum", "SampleCount", "Minimum", "Maximum")
        ] == [
            8.0,
            3.0,
            1.0,
            5.0,
        ]
        assert period_statistic("Average", [summed, single]) == 8.0 / 3
        assert period_statistic("p95", [summed]) is None
        assert period_statistic("p95", [summed, single]) == 1.0


class TestAlarms:
    def test_a_sum_at_the_threshold_is_alarm_and_below_it_ok(self) -> None:
        alarm = xpi_alarm("DecisionBlock", 3)
        assert evaluate_alarm(alarm, [point("DecisionBlock", 1)] * 3, NOW).state == "ALARM"
        assert evaluate_alarm(alarm, [point("DecisionBlock", 1)] * 2, NOW).state == "OK"

    def test_only_the_alarms_metric_dimensions_and_window_count(self) -> None:
        alarm = xpi_alarm("DecisionBlock", 1)
        others = [
            point("DecisionAllow", 1),
            point("DecisionBlock", 1, dimensions=frozenset({("service", "other")})),
            point("DecisionBlock", 1, seconds_ago=61),
        ]
        assert evaluate_alarm(alarm, others, NOW).state == "OK"

    def test_no_data_follows_treat_missing_data(self) -> None:
        assert evaluate_alarm(xpi_alarm("X", 1), [], NOW).state == "OK"
        assert (
            evaluate_alarm(xpi_alarm("X", 1, TreatMissingData="missing"), [], NOW).state
            == "INSUFFICIENT_DATA"
        )
        assert evaluate_alarm(xpi_alarm("X", 1, TreatMissingData="breaching"), [], NOW).state == "ALARM"
        ignored = xpi_alarm("X", 1, TreatMissingData="ignore", StateValue="ALARM")
        assert evaluate_alarm(ignored, [], NOW).state == "ALARM"

    def test_a_p95_alarm_reads_the_extended_statistic(self) -> None:
        alarm = xpi_alarm("Duration", 1000, Statistic=None, ExtendedStatistic="p95", Period=300)
        alarm["ComparisonOperator"] = "GreaterThanThreshold"
        fast = [point("Duration", 100)] * 19
        assert (
            evaluate_alarm(alarm, [*fast, point("Duration", 5000)], NOW).state == "OK"
        )  # p95 of 20 is the 19th
        assert evaluate_alarm(alarm, [*fast, *[point("Duration", 5000)] * 2], NOW).state == "ALARM"

    def test_a_metric_math_error_rate(self) -> None:
        def stat(query_id: str, metric: str) -> dict[str, Any]:
            return {
                "Id": query_id,
                "ReturnData": False,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "XPI",
                        "MetricName": metric,
                        "Dimensions": [{"Name": "service", "Value": "xpi"}],
                    },
                    "Period": 300,
                    "Stat": "Sum",
                },
            }

        alarm = xpi_alarm("", 5, ComparisonOperator="GreaterThanThreshold")
        alarm["Metrics"] = [
            stat("errors", "Errors"),
            stat("invocations", "Invocations"),
            {"Id": "rate", "Expression": "100 * errors / invocations", "ReturnData": True},
        ]
        calls = [point("Invocations", 1)] * 10
        assert evaluate_alarm(alarm, [*calls, point("Errors", 0)], NOW).state == "OK"
        assert evaluate_alarm(alarm, [*calls, point("Errors", 1)], NOW).state == "ALARM"  # 10 % > 5 %

    def test_the_notification_carries_cloudwatchs_fields(self) -> None:
        alarm = xpi_alarm("DecisionBlock", 1)
        verdict = evaluate_alarm(alarm, [point("DecisionBlock", 1)], NOW)

        message = json.loads(notification(alarm, "OK", verdict, "us-gov-west-1", NOW))

        assert message["AlarmName"] == "a"
        assert (message["OldStateValue"], message["NewStateValue"]) == ("OK", "ALARM")
        assert message["AWSAccountId"] == "123456789012"
        assert message["Trigger"]["MetricName"] == "DecisionBlock"
        assert message["Trigger"]["Dimensions"] == [{"name": "service", "value": "xpi"}]


class TestTheGlueAgainstMoto:
    """LocalMonitoring against moto in process: what it puts, the state it sets and the notice it sends."""

    @pytest.fixture
    def aws(self, tmp_path: Path) -> Iterator[dict[str, Any]]:
        import boto3
        from moto import mock_aws

        with mock_aws():
            session = boto3.Session(
                region_name="us-gov-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
            )
            sqs, sns = session.client("sqs"), session.client("sns")
            topic = sns.create_topic(Name="alarms")["TopicArn"]
            inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
            dlq = sqs.create_queue(QueueName="some-dlq")["QueueUrl"]
            inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn["QueueArn"])
            cloudwatch = session.client("cloudwatch")
            cloudwatch.put_metric_alarm(
                AlarmName="dlq",
                Namespace="AWS/SQS",
                MetricName="ApproximateNumberOfMessagesVisible",
                Dimensions=[{"Name": "QueueName", "Value": "some-dlq"}],
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=0,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
                AlarmActions=[topic],
            )
            monitoring = LocalMonitoring(
                session,
                None,
                account_id="123456789012",
                log_dir=tmp_path,
                queue_urls=[dlq],
                state_machine_arns=[],
            )
            yield {"session": session, "monitoring": monitoring, "dlq": dlq, "inbox": inbox}

    def test_a_dlq_message_sets_the_alarm_and_notifies_its_topic(self, aws: dict[str, Any]) -> None:
        session, monitoring = aws["session"], aws["monitoring"]
        session.client("sqs").send_message(QueueUrl=aws["dlq"], MessageBody="dead")

        monitoring.tick(datetime.now(UTC))

        [alarm] = session.client("cloudwatch").describe_alarms(AlarmNames=["dlq"])["MetricAlarms"]
        assert alarm["StateValue"] == "ALARM"
        [message] = session.client("sqs").receive_message(QueueUrl=aws["inbox"])["Messages"]
        notice = json.loads(json.loads(message["Body"])["Message"])
        assert (notice["AlarmName"], notice["NewStateValue"]) == ("dlq", "ALARM")

    def test_data_older_than_the_kept_window_is_dropped_from_moto(self, aws: dict[str, Any]) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        cloudwatch = aws["session"].client("cloudwatch")
        now = datetime.now(UTC)
        for age in (KEEP_DATA_S + 60, 30):
            cloudwatch.put_metric_data(
                Namespace="XPI",
                MetricData=[{"MetricName": "X", "Value": 1.0, "Timestamp": now - timedelta(seconds=age)}],
            )

        aws["monitoring"].tick(now)

        stored = cloudwatch_backends["123456789012"]["us-gov-west-1"].metric_data
        ages = [
            round((now - d.timestamp.replace(tzinfo=UTC)).total_seconds())
            for d in stored
            if d.namespace == "XPI"
        ]

        assert ages == [30]
