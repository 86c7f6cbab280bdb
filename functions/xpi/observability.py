"""The one place Logger, Tracer and Metrics are created; every module imports them from here."""

from aws_lambda_powertools import Logger, Metrics, Tracer

# Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
# (set in the template's Globals), so nothing here is environment-specific.
logger = Logger()
tracer = Tracer()
metrics = Metrics()
