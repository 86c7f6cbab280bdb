"""The one place Logger, Tracer and Metrics are created; every module imports them from here."""

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
# (set in the template's Globals), so nothing here is environment-specific.
logger = Logger()
# The X-Ray SDK patches what xpi calls through: botocore (every AWS and Bedrock call) and http.client
# (urllib3: the egress path health probe). Tracer() alone patches every library the SDK supports that is
# installed (sqlite3 among them), imported at every cold start for nothing.
TRACED_MODULES = ("botocore", "httplib")
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()

# Powertools' middleware factory (behind event_parser) logs every exception passing it with its text and
# traceback, and an exception's text can quote the request (pydantic's input_value). xpi logs an error's
# code and class itself (xpi.handlers.contain_errors), so that logger is kept quiet.
logging.getLogger("aws_lambda_powertools.middleware_factory.factory").setLevel(logging.CRITICAL)


def count_security_alert() -> None:
    """One SecurityAlerts (namespace XPI) per Security Alert published, whatever raised it: the metric
    the security-alerts alarm watches (template.yaml, SecurityAlertsAlarm)."""
    metrics.add_metric(name="SecurityAlerts", unit=MetricUnit.Count, value=1)


def path_metric(name: str, unit: MetricUnit, value: float, path: str) -> None:
    """One metric with the egress path as its dimension (xpi.domain.egress), in its own EMF line so the
    request's shared metrics keep their dimensions."""
    with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="EgressPath", value=path)
