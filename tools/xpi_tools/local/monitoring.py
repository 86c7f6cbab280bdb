"""CloudWatch's part on the local stack: metrics into moto, and the template's alarms evaluated.

moto stores metrics and alarms but produces no metric itself and evaluates no alarm. On AWS, CloudWatch
Logs extracts the functions' embedded metric format (EMF) lines, Lambda, SQS and Step Functions publish
their own metrics, and CloudWatch evaluates each alarm and notifies its actions. Here, once a second:

- the runtimes' log files (`.xpi/local/logs`, one per runtime process) are read from where the last
  round stopped and every EMF line becomes a PutMetricData (namespace, dimension sets, values, its
  timestamp), as CloudWatch Logs would extract it;
- Lambda's metrics for each invocation the runtime pool ran (`AWS/Lambda`: Invocations, Errors (0 or 1),
  Duration, and Throttles for an invoke refused over the function's reserved concurrency), SQS's
  ApproximateNumberOfMessagesVisible of each of the stack's queues (every 5 s), and Step Functions'
  ExecutionsFailed for each failed execution, all published with PutMetricData (aggregated per series
  and second as StatisticValues, but Lambda's Duration);
- every alarm (DescribeAlarms, reread every 10 s) is evaluated, when data was shipped and at least every
  5 s, over its last EvaluationPeriods periods ending now, from the
  data points moto holds: its statistic (Sum, Average, Minimum, Maximum, SampleCount, pNN), metric math
  of + - * / over its MetricStat queries, its comparison and threshold, DatapointsToAlarm and
  TreatMissingData. A change of state is set with SetAlarmState and published, as CloudWatch's
  notification JSON, to the alarm's SNS actions for that state.

Known differences: periods slide with the clock (CloudWatch aligns them to the minute), so an alarm
fires within a second of its data; data points older than 10 minutes are dropped from moto (the stack
would otherwise grow with every metric for as long as it runs); an alarm's period is not checked
against the metric's resolution.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import operator
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)

TICK_S = 1.0
QUEUE_SAMPLE_S = 5.0  # queue depths (SQS publishes them every minute)
IDLE_EVALUATION_S = 5.0  # alarms are evaluated on new data, and at least this often
ALARMS_REREAD_S = 10.0  # alarm definitions (DescribeAlarms) are read again this often
KEEP_DATA_S = 600  # moto's data points older than this are dropped (longest alarm window: 5 minutes)
_MAX_BATCH = 500  # PutMetricData's limit of data points per call
_MAX_VALUES = 150  # values of one datum
# Sent as single values, for the percentile alarms and the dashboard's p50/p95 (the rest is aggregated).
PERCENTILE_METRICS = frozenset({("AWS/Lambda", "Duration")})


def _too_many_requests_base() -> type[Exception]:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError


class TooManyRequests(_too_many_requests_base()):  # type: ignore[misc]
    """Lambda's answer to an invoke over the function's reserved concurrency (HTTP 429)."""

    code = 429

    def __init__(self, function_name: str) -> None:
        super().__init__(
            "TooManyRequestsException", f"Rate Exceeded. (reserved concurrency of {function_name} in use)"
        )


# ------------------------------------------------------------------------------------------- EMF
def emf_metric_data(line: str) -> list[tuple[str, dict[str, Any]]]:
    """The (namespace, PutMetricData datum) pairs one log line carries; [] for a line that is not EMF."""
    line = line.strip()
    if not line.startswith("{") or '"_aws"' not in line:
        return []
    try:
        document = json.loads(line)
        directives = document["_aws"]["CloudWatchMetrics"]
        timestamp = datetime.fromtimestamp(int(document["_aws"]["Timestamp"]) / 1000, tz=UTC)
    except (ValueError, KeyError, TypeError):
        return []
    data: list[tuple[str, dict[str, Any]]] = []
    for directive in directives:
        namespace = str(directive.get("Namespace", ""))
        for definition in directive.get("Metrics", []):
            name = definition.get("Name")
            if not namespace or name not in document:
                continue
            raw = document[name]
            values = [float(v) for v in (raw if isinstance(raw, list) else [raw])]
            for dimension_set in directive.get("Dimensions", [[]]):
                if any(key not in document for key in dimension_set):
                    continue
                for start in range(0, len(values), _MAX_VALUES):
                    data.append(
                        (
                            namespace,
                            {
                                "MetricName": str(name),
                                "Dimensions": [{"Name": k, "Value": str(document[k])} for k in dimension_set],
                                "Timestamp": timestamp,
                                "Values": values[start : start + _MAX_VALUES],
                                "Unit": str(definition.get("Unit", "None")),
                            },
                        )
                    )
    return data


class LogTail:
    """New complete lines of every `*.log` file in a folder, each file read on from where it was left."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._offsets: dict[Path, int] = {}

    def new_lines(self) -> Iterable[str]:
        if not self._folder.is_dir():
            return
        for path in sorted(self._folder.glob("*.log")):
            offset = self._offsets.get(path, 0)  # a file that appeared since start: from its beginning
            try:
                with path.open("rb") as file:
                    file.seek(offset)
                    chunk = file.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next round
            self._offsets[path] = offset + end
            yield from chunk[:end].decode("utf-8", errors="replace").splitlines()

    def start(self) -> None:
        """Skip what is already in the folder (earlier stacks' runtimes appended to the same files)."""
        if self._folder.is_dir():
            for path in self._folder.glob("*.log"):
                self._offsets[path] = path.stat().st_size


# ------------------------------------------------------------------------------------ evaluation
_OPERATORS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate_expression(expression: str, values: Mapping[str, float]) -> float | None:
    """Metric math of numbers, query ids, + - * / and parentheses; None where a term has no value or a
    division by zero (CloudWatch leaves that data point out). Anything else is refused (ValueError)."""

    def value(node: ast.AST) -> float | None:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            return values.get(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = value(node.operand)
            return None if operand is None else -operand
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if left is None or right is None or (isinstance(node.op, ast.Div) and right == 0):
                return None
            return _OPERATORS[type(node.op)](left, right)
        raise ValueError(f"metric math the local evaluator does not know: {expression!r}")

    return value(ast.parse(expression, mode="eval"))


def statistic(name: str, values: Sequence[float]) -> float:
    """A CloudWatch statistic of a period's values (not empty): Sum, Average, Minimum, Maximum,
    SampleCount, or a percentile pNN (nearest rank, as CloudWatch computes it from raw values)."""
    if name == "Sum":
        return float(sum(values))
    if name == "Average":
        return float(sum(values)) / len(values)
    if name == "Minimum":
        return float(min(values))
    if name == "Maximum":
        return float(max(values))
    if name == "SampleCount":
        return float(len(values))
    if name.startswith("p"):
        ordered = sorted(values)
        rank = math.ceil(float(name[1:]) / 100 * len(ordered))
        return float(ordered[max(rank, 1) - 1])
    raise ValueError(f"statistic the local evaluator does not know: {name}")


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


@dataclass(frozen=True)
class Datapoint:
    """One value, or (minimum given) an aggregate of `count` values summing to `value` (StatisticValues)."""

    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    timestamp: datetime
    value: float
    count: float = 1.0
    minimum: float | None = None
    maximum: float | None = None


def period_statistic(name: str, points: Sequence[Datapoint]) -> float | None:
    """A statistic of one period's data points (not empty); a percentile only from single values (as
    CloudWatch, which computes none from StatisticValues), None when there are none."""
    if name.startswith("p"):
        single = [p.value for p in points if p.minimum is None]
        return statistic(name, single) if single else None
    if name == "Sum":
        return float(sum(p.value for p in points))
    if name == "SampleCount":
        return float(sum(p.count for p in points))
    if name == "Average":
        return float(sum(p.value for p in points)) / sum(p.count for p in points)
    if name == "Minimum":
        return min(p.value if p.minimum is None else p.minimum for p in points)
    if name == "Maximum":
        return max(p.value if p.maximum is None else p.maximum for p in points)
    raise ValueError(f"statistic the local evaluator does not know: {name}")


@dataclass
class Verdict:
    state: str  # OK, ALARM, INSUFFICIENT_DATA
    reason: str
    values: list[float] = field(default_factory=list)  # the periods' values, newest first


def _series(
    points: Sequence[Datapoint],
    metric: Mapping[str, Any],
    stat: str,
    *,
    period_s: int,
    periods: int,
    now: datetime,
) -> list[float | None]:
    """The statistic of each of the last `periods` periods ending now, newest first (None: no data)."""
    dimensions = frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
    buckets: list[list[Datapoint]] = [[] for _ in range(periods)]
    for point in points:
        if (
            point.namespace != metric["Namespace"]
            or point.name != metric["MetricName"]
            or point.dimensions != dimensions
        ):
            continue
        age = (now - point.timestamp).total_seconds()
        index = int(age // period_s) if age >= 0 else 0
        if index < periods:
            buckets[index].append(point)
    return [period_statistic(stat, bucket) if bucket else None for bucket in buckets]


def evaluate_alarm(alarm: Mapping[str, Any], points: Sequence[Datapoint], now: datetime) -> Verdict:
    """The state an alarm (DescribeAlarms' MetricAlarms entry) is in, given the data points."""
    periods = int(alarm["EvaluationPeriods"])
    if alarm.get("Metrics"):
        queries = alarm["Metrics"]
        stats = {
            q["Id"]: _series(
                points,
                q["MetricStat"]["Metric"],
                q["MetricStat"]["Stat"],
                period_s=int(q["MetricStat"]["Period"]),
                periods=periods,
                now=now,
            )
            for q in queries
            if "MetricStat" in q
        }
        returned = next(q for q in queries if q.get("ReturnData", True))
        if "MetricStat" in returned:
            series = stats[returned["Id"]]
        else:
            series = [evaluate_expression(returned["Expression"], _at(stats, i)) for i in range(periods)]
    else:
        stat = alarm.get("ExtendedStatistic") or alarm["Statistic"]
        series = _series(points, alarm, stat, period_s=int(alarm["Period"]), periods=periods, now=now)

    compare = _COMPARISONS[alarm["ComparisonOperator"]]
    threshold = float(alarm["Threshold"])
    present = [v for v in series if v is not None]
    breaching = [v for v in present if compare(v, threshold)]
    needed = int(alarm.get("DatapointsToAlarm") or periods)
    if len(breaching) >= needed:
        return Verdict(
            "ALARM",
            f"Threshold Crossed: {len(breaching)} out of the last {periods} datapoints "
            f"[{', '.join(f'{v:g}' for v in breaching)}] were {_phrase(alarm)} "
            f"the threshold ({threshold:g}).",
            present,
        )
    if not present:
        treat = alarm.get("TreatMissingData", "missing")
        if treat == "breaching":
            return Verdict("ALARM", "Threshold Crossed: no datapoints were received (treated as breaching).")
        if treat == "notBreaching":
            return Verdict("OK", "no datapoints were received (treated as not breaching).")
        if treat == "ignore":
            return Verdict(str(alarm.get("StateValue", "INSUFFICIENT_DATA")), "no datapoints (ignored).")
        return Verdict("INSUFFICIENT_DATA", "Insufficient Data: no datapoints were received.")
    return Verdict(
        "OK",
        f"Threshold Crossed: {len(present) - len(breaching)} datapoints "
        f"[{', '.join(f'{v:g}' for v in present)}] were not {_phrase(alarm)} the threshold ({threshold:g}).",
        present,
    )


def _at(stats: Mapping[str, list[float | None]], index: int) -> dict[str, float]:
    """The queries' values in one period (those with data)."""
    values = {}
    for query_id, series in stats.items():
        value = series[index]
        if value is not None:
            values[query_id] = value
    return values


def _phrase(alarm: Mapping[str, Any]) -> str:
    return {
        "GreaterThanThreshold": "greater than",
        "GreaterThanOrEqualToThreshold": "greater than or equal to",
        "LessThanThreshold": "less than",
        "LessThanOrEqualToThreshold": "less than or equal to",
    }[alarm["ComparisonOperator"]]


def notification(
    alarm: Mapping[str, Any], old_state: str, verdict: Verdict, region: str, now: datetime
) -> str:
    """The message CloudWatch publishes to an alarm's SNS action (its documented JSON fields)."""
    arn = str(alarm["AlarmArn"])
    trigger: dict[str, Any] = {
        "EvaluationPeriods": alarm["EvaluationPeriods"],
        "ComparisonOperator": alarm["ComparisonOperator"],
        "Threshold": alarm["Threshold"],
        "TreatMissingData": alarm.get("TreatMissingData", "missing"),
    }
    if alarm.get("Metrics"):
        trigger["Metrics"] = alarm["Metrics"]
    else:
        trigger.update(
            {
                "MetricName": alarm["MetricName"],
                "Namespace": alarm["Namespace"],
                "Statistic": alarm.get("Statistic"),
                "ExtendedStatistic": alarm.get("ExtendedStatistic"),
                "Dimensions": [{"name": d["Name"], "value": d["Value"]} for d in alarm.get("Dimensions", [])],
                "Period": alarm["Period"],
            }
        )
    return json.dumps(
        {
            "AlarmName": alarm["AlarmName"],
            "AlarmDescription": alarm.get("AlarmDescription"),
            "AWSAccountId": arn.split(":")[4],
            "AlarmConfigurationUpdatedTimestamp": str(alarm.get("AlarmConfigurationUpdatedTimestamp", "")),
            "NewStateValue": verdict.state,
            "NewStateReason": verdict.reason,
            "StateChangeTime": now.isoformat(timespec="milliseconds"),
            "Region": region,
            "AlarmArn": arn,
            "OldStateValue": old_state,
            "Trigger": trigger,
        },
        default=str,
    )


def aggregated(data: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """One StatisticValues datum per series and second, as an EMF client that aggregates would send
    (moto keeps an object per value it is given: the stack's memory would grow with every request);
    Lambda's Duration stays as single values, which its percentile alarms need."""
    out: list[tuple[str, dict[str, Any]]] = []
    series: dict[tuple[Any, ...], dict[str, Any]] = {}
    for namespace, datum in data:
        if (namespace, datum["MetricName"]) in PERCENTILE_METRICS:
            out.append((namespace, datum))
            continue
        values = [float(v) for v in datum.get("Values") or [datum["Value"]]]
        timestamp = datum["Timestamp"].replace(microsecond=0)
        dimensions = tuple(sorted((d["Name"], d["Value"]) for d in datum.get("Dimensions", [])))
        key = (namespace, datum["MetricName"], dimensions, datum.get("Unit"), timestamp)
        if key not in series:
            series[key] = {
                "MetricName": datum["MetricName"],
                "Dimensions": datum.get("Dimensions", []),
                "Timestamp": timestamp,
                "StatisticValues": {
                    "SampleCount": 0.0,
                    "Sum": 0.0,
                    "Minimum": math.inf,
                    "Maximum": -math.inf,
                },
                **({"Unit": datum["Unit"]} if datum.get("Unit") else {}),
            }
            out.append((namespace, series[key]))
        statistics = series[key]["StatisticValues"]
        statistics["SampleCount"] += len(values)
        statistics["Sum"] += sum(values)
        statistics["Minimum"] = min(statistics["Minimum"], *values)
        statistics["Maximum"] = max(statistics["Maximum"], *values)
    return out


# ------------------------------------------------------------------------------------ the glue
class LocalMonitoring:
    """Ships metrics into moto and evaluates the alarms, once a second, on its own thread."""

    def __init__(
        self,
        session: Any,
        aws_url: str,
        *,
        account_id: str,
        log_dir: Path,
        queue_urls: Sequence[str],
        state_machine_arns: Sequence[str],
    ) -> None:
        self._region = str(session.region_name)
        self._account_id = account_id
        self._cloudwatch = session.client("cloudwatch", endpoint_url=aws_url)
        self._sns = session.client("sns", endpoint_url=aws_url)
        self._logs = LogTail(log_dir)
        self._queue_names = [url.rsplit("/", 1)[1] for url in queue_urls]
        self._state_machine_arns = set(state_machine_arns)
        self._scan_from: dict[str, int] = {}  # per state machine: executions before it are all counted
        self._failed_seen: dict[str, set[int]] = {}  # per state machine: FAILED ones counted past it
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_pruned = self._last_sampled = self._last_evaluated = datetime.min.replace(tzinfo=UTC)
        self._alarms: list[dict[str, Any]] = []  # DescribeAlarms, reread every ALARMS_REREAD_S
        self._alarms_read = datetime.min.replace(tzinfo=UTC)

    # ---------------------------------------------------------------- what Lambda publishes
    def lambda_invocation(self, function_name: str, duration_ms: float, failed: bool) -> None:
        now = datetime.now(UTC)
        dimensions = [{"Name": "FunctionName", "Value": function_name}]
        with self._lock:
            for name, value, unit in (
                ("Invocations", 1.0, "Count"),
                ("Errors", 1.0 if failed else 0.0, "Count"),
                ("Duration", duration_ms, "Milliseconds"),
            ):
                self._pending.append(
                    (
                        "AWS/Lambda",
                        {
                            "MetricName": name,
                            "Dimensions": dimensions,
                            "Timestamp": now,
                            "Value": value,
                            "Unit": unit,
                        },
                    )
                )

    def lambda_throttle(self, function_name: str) -> None:
        datum = {
            "MetricName": "Throttles",
            "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
            "Timestamp": datetime.now(UTC),
            "Value": 1.0,
            "Unit": "Count",
        }
        with self._lock:
            self._pending.append(("AWS/Lambda", datum))

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._logs.start()
        self._thread = threading.Thread(target=self._run, name="xpi-local-monitoring", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception:  # one bad round (moto stopping, a malformed alarm) must not end the glue
                _LOG.exception("local monitoring round failed")

    def tick(self, now: datetime | None = None) -> None:
        """Ship what is new; evaluate the alarms when something was shipped, else every few seconds
        (a window that slid past its data returns its alarm to OK)."""
        now = now or datetime.now(UTC)
        shipped = self.ship(now)
        if shipped or (now - self._last_evaluated).total_seconds() >= IDLE_EVALUATION_S:
            self.evaluate(now)
            self._last_evaluated = now

    # ---------------------------------------------------------------- metrics in
    def ship(self, now: datetime) -> int:
        """PutMetricData of what is new; the number of data shipped."""
        data = [datum for line in self._logs.new_lines() for datum in emf_metric_data(line)]
        data += self._failed_executions()
        if (now - self._last_sampled).total_seconds() >= QUEUE_SAMPLE_S:
            data += self._queue_depths()
            self._last_sampled = now
        with self._lock:
            data += self._pending
            self._pending = []
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in aggregated(data):
            by_namespace.setdefault(namespace, []).append(datum)
        for namespace, metric_data in by_namespace.items():
            for start in range(0, len(metric_data), _MAX_BATCH):
                self._cloudwatch.put_metric_data(
                    Namespace=namespace, MetricData=metric_data[start : start + _MAX_BATCH]
                )
        return len(data)

    def _queue_depths(self) -> list[tuple[str, dict[str, Any]]]:
        """Each queue's visible messages, read from moto's SQS in this process (as SQS publishes them)."""
        from moto.sqs.models import sqs_backends

        queues = sqs_backends[self._account_id][self._region].queues
        now = datetime.now(UTC)
        data = []
        for name in self._queue_names:
            queue = queues.get(name)
            if queue is None:  # a queue deleted by a test
                continue
            datum = {
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": name}],
                "Timestamp": now,
                "Value": float(queue.approximate_number_of_messages),
                "Unit": "Count",
            }
            data.append(("AWS/SQS", datum))
        return data

    def _failed_executions(self) -> list[tuple[str, dict[str, Any]]]:
        """One ExecutionsFailed per execution that ended FAILED, read from moto's Step Functions in this
        process. Executions are kept in start order: each round reads on from the first one still
        running, so a stack with thousands of finished executions costs what its running ones do."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[self._account_id][self._region]
        data = []
        for machine in list(backend.state_machines):
            if machine.arn not in self._state_machine_arns:
                continue
            executions = machine.executions
            start = self._scan_from.get(machine.arn, 0)
            counted = self._failed_seen.setdefault(machine.arn, set())
            leading_finished = True
            for position in range(start, len(executions)):
                execution: Any = executions[position]
                status = getattr(execution.exec_status, "value", execution.exec_status)
                if status in {None, "RUNNING", "PENDING_REDRIVE"}:
                    leading_finished = False
                    continue
                if leading_finished:
                    self._scan_from[machine.arn] = position + 1
                if status != "FAILED" or position in counted:
                    continue
                counted.add(position)
                datum = {
                    "MetricName": "ExecutionsFailed",
                    "Dimensions": [{"Name": "StateMachineArn", "Value": machine.arn}],
                    "Timestamp": _aware(execution.stop_date or datetime.now(UTC)),
                    "Value": 1.0,
                    "Unit": "Count",
                }
                data.append(("AWS/States", datum))
            self._failed_seen[machine.arn] = {i for i in counted if i >= self._scan_from.get(machine.arn, 0)}
        return data

    # ---------------------------------------------------------------- alarms
    def _datapoints(self, since: datetime, watched: set[tuple[str, str]]) -> list[Datapoint]:
        """moto's data points of the watched metrics (namespace, name) since a time; drops those older
        than KEEP_DATA_S every minute."""
        from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum, cloudwatch_backends

        backend = cloudwatch_backends[self._account_id][self._region]
        stored: list[Any] = backend.metric_data
        now = datetime.now(UTC)
        if (now - self._last_pruned).total_seconds() > 60:
            cutoff = now - timedelta(seconds=KEEP_DATA_S)
            old = 0  # appended as published, so the old ones lead; del of a prefix keeps moto's appends
            while old < len(stored) and _aware(stored[old].timestamp) < cutoff:
                old += 1
            del stored[:old]
            self._last_pruned = now
        points = []
        for datum in reversed(stored):  # appended as published: stop well before the window
            timestamp = _aware(datum.timestamp)
            if timestamp < since - timedelta(seconds=120):
                break
            if timestamp < since or (datum.namespace, datum.name) not in watched:
                continue
            dimensions = frozenset((str(d.name), str(d.value)) for d in datum.dimensions)
            if isinstance(datum, MetricDatum):
                points.append(
                    Datapoint(datum.namespace, datum.name, dimensions, timestamp, float(datum.value))
                )
            elif isinstance(datum, MetricAggregatedDatum):
                points.append(
                    Datapoint(
                        datum.namespace,
                        datum.name,
                        dimensions,
                        timestamp,
                        float(datum.sum),
                        count=float(datum.sample_count),
                        minimum=float(datum.min),
                        maximum=float(datum.max),
                    )
                )
        return points

    def evaluate(self, now: datetime) -> None:
        if (now - self._alarms_read).total_seconds() >= ALARMS_REREAD_S:
            pages = self._cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"])
            self._alarms = [alarm for page in pages for alarm in page["MetricAlarms"]]
            self._alarms_read = now
        alarms = self._alarms
        if not alarms:
            return
        longest = max(_window_s(alarm) for alarm in alarms)
        points = self._datapoints(
            now - timedelta(seconds=longest), {m for a in alarms for m in _metrics_of(a)}
        )
        for alarm in alarms:
            verdict = evaluate_alarm(alarm, points, now)
            old_state = str(alarm["StateValue"])
            if verdict.state == old_state:
                continue
            self._cloudwatch.set_alarm_state(
                AlarmName=alarm["AlarmName"],
                StateValue=verdict.state,
                StateReason=verdict.reason[:1023],
                StateReasonData=json.dumps({"version": "1.0", "recentDatapoints": verdict.values}),
            )
            alarm["StateValue"] = verdict.state  # as set, until the definitions are read again
            actions = {
                "ALARM": alarm.get("AlarmActions", []),
                "OK": alarm.get("OKActions", []),
                "INSUFFICIENT_DATA": alarm.get("InsufficientDataActions", []),
            }[verdict.state]
            if not alarm.get("ActionsEnabled", True):
                continue
            message = notification(alarm, old_state, verdict, self._region, now)
            for action in actions:
                if ":sns:" in action:
                    self._sns.publish(
                        TopicArn=action,
                        Subject=f'{verdict.state}: "{alarm["AlarmName"]}" in {self._region}'[:100],
                        Message=message,
                    )


def _metrics_of(alarm: Mapping[str, Any]) -> list[tuple[str, str]]:
    queries = [q["MetricStat"]["Metric"] for q in alarm.get("Metrics", []) if "MetricStat" in q]
    return [(m["Namespace"], m["MetricName"]) for m in queries or [alarm]]


def _window_s(alarm: Mapping[str, Any]) -> int:
    periods = int(alarm["EvaluationPeriods"])
    if alarm.get("Metrics"):
        return periods * max(int(q["MetricStat"]["Period"]) for q in alarm["Metrics"] if "MetricStat" in q)
    return periods * int(alarm["Period"])


def _aware(timestamp: datetime) -> datetime:
    return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
