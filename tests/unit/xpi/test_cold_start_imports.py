"""What a function's cold start imports: a module only some functions use is imported where it is used,
not by every handler through the composition root (bench/bench_cold_start.py measures the cost)."""

import json
import re
import subprocess
import sys

import pytest

from tests.helpers.events import REPO

ONLY_WHERE_USED = (
    "xpi.adapters.admin",
    "xpi.adapters.comprehend",
    # Roles Anywhere's credentials and their X.509 stack: only with that credential source
    "xpi.adapters.roles_anywhere",
    "iam_rolesanywhere_session",
    # the lineage seal's adapters and service: only the seal function
    "xpi.adapters.lineage_seal",
    "xpi.services.sealing",
    # the compliance report's and checks' modules: only the compliance functions
    "xpi.adapters.compliance",
    "xpi.services.compliance",
    "xpi.models.compliance",
    "xpi.domain.lineage_verify",
)


@pytest.mark.parametrize("handler", ["api_invoke", "classify", "invoke", "api", "consume"])
def test_a_handler_imports_no_adapter_it_does_not_use(handler: str) -> None:
    # GIVEN a fresh interpreter, as at a cold start WHEN the handler module is imported
    script = (
        f"import sys, json; import xpi.handlers.{handler}; "
        f"print(json.dumps([m for m in {list(ONLY_WHERE_USED)!r} if m in sys.modules]))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"POWERTOOLS_TRACE_DISABLED": "true", "PATH": ""},
    )
    # THEN none of those came with it
    assert json.loads(loaded.stdout) == []


HANDLERS = sorted(
    path.stem
    for path in (REPO / "functions" / "xpi" / "handlers").glob("*.py")
    if path.stem not in ("__init__", "http")
)
# Every variable the factories require, pointing nowhere: building an adapter calls no AWS API.
FACTORY_ENVIRONMENT = {
    "PATH": "",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_REGION": "us-gov-west-1",
    "AWS_DEFAULT_REGION": "us-gov-west-1",
    "AWS_ACCESS_KEY_ID": "unused",
    "AWS_SECRET_ACCESS_KEY": "unused",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "LINEAGE_TABLE": "lineage",
    "IDEMPOTENCY_TABLE": "idempotency",
    "PACING_TABLE": "pacing",
    "BUDGET_TABLE": "budgets",
    "BATCH_TABLE": "batches",
    "BATCH_JOB_BUCKET": "commercial-batch-jobs",
    "BATCH_JOB_KMS_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/jobs",
    "BATCH_JOB_ROLE_ARN": "arn:aws:iam::123456789012:role/xpi-bedrock-batch",
    "EVENT_BUS_NAME": "bus",
    "ARTIFACTS_BUCKET": "artifacts",
    "COMMERCIAL_CREDENTIALS_SECRET_ID": "credentials",
    "HASH_KEY_SECRET_ID": "hash-key",
    "CONFIG_SIGNING_SECRET_ID": "signing",
    "LINEAGE_DIGEST_BUCKET": "digests",
    "LINEAGE_SIGNING_KEY_ID": "key",
    "STATE_MACHINE_ARN": "arn:aws-us-gov:states:us-gov-west-1:123456789012:stateMachine:inference",
    "QUEUE_STATE_MACHINE_ARN": "arn:aws-us-gov:states:us-gov-west-1:123456789012:stateMachine:queue",
    "BATCH_STATE_MACHINE_ARN": "arn:aws-us-gov:states:us-gov-west-1:123456789012:stateMachine:batch",
}


@pytest.mark.parametrize("handler", [h for h in HANDLERS if not h.startswith("compliance")])
def test_a_handlers_first_invocation_imports_nothing_its_init_did_not(handler: str) -> None:
    # GIVEN a fresh interpreter that imported the handler module (Lambda's init phase)
    source = (REPO / "functions" / "xpi" / "handlers" / f"{handler}.py").read_text(encoding="utf-8")
    factories = sorted(set(re.findall(r"dependencies\.([a-z_]+)\(", source)))
    script = f"""
import json, sys
import xpi.handlers.{handler}
from xpi import dependencies
before = set(sys.modules)
for name in {factories!r}:
    factory = getattr(dependencies, name)
    if name == "extra_detectors":
        factory(dependencies.classification_policy())
    else:
        factory()
print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith("xpi."))))
"""
    # WHEN its first invocation builds what the handler asks the composition root for
    built = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=FACTORY_ENVIRONMENT
    )
    # THEN it imports no module of xpi's (the shipped routing document's folder aside: data, not code)
    assert [module for module in json.loads(built.stdout) if module != "xpi.config"] == []


@pytest.mark.parametrize(
    ("handler", "not_imported"),
    [
        ("api_invoke", ["xpi.adapters.batch_store", "xpi.models.batch", "xpi.adapters.workflow"]),
        (
            "api_invoke",
            ["xpi.services.queue_processing", "xpi.adapters.intake_store", "xpi.adapters.rotation"],
        ),
        ("classify", ["xpi.adapters.bedrock", "xpi.adapters.batch_store", "xpi.adapters.sync_ledger"]),
        ("route", ["xpi.adapters.bedrock", "xpi.domain.classification.detectors", "xpi.adapters.workflow"]),
        ("validate", ["xpi.adapters.bedrock", "xpi.domain.classification.detectors", "xpi.models.batch"]),
        (
            "record",
            ["xpi.adapters.bedrock", "xpi.domain.classification.detectors", "xpi.adapters.batch_store"],
        ),
        ("consume", ["xpi.adapters.bedrock", "xpi.adapters.sync_ledger", "xpi.adapters.batch_store"]),
        (
            "batch_split",
            ["xpi.adapters.bedrock", "xpi.adapters.sync_ledger", "xpi.services.queue_processing"],
        ),
        # the ports name the models their methods take for the type checker only: a handler loads the
        # models its own adapters and services use, not every port's
        (
            "validate",
            ["xpi.models.lineage", "xpi.models.credentials", "xpi.models.queue", "xpi.domain.pacing"],
        ),
        ("route", ["xpi.models.lineage", "xpi.models.credentials", "xpi.models.queue", "xpi.domain.circuit"]),
        (
            "classify",
            ["xpi.models.lineage", "xpi.models.credentials", "xpi.models.answer", "xpi.domain.egress"],
        ),
        ("rotate_credentials", ["xpi.models.lineage", "xpi.models.queue", "xpi.domain.access"]),
        ("seal", ["xpi.models.events", "xpi.models.credentials", "xpi.models.queue"]),
        # a function that answers only errors in the API's shape builds that shape, not every route's answers
        ("api_invoke", ["xpi.models.api"]),
        ("usage_report", ["xpi.models.api"]),
        ("compliance_report", ["xpi.models.api"]),
    ],
)
def test_a_handler_imports_no_other_handlers_adapters(handler: str, not_imported: list[str]) -> None:
    # GIVEN a fresh interpreter, as at a cold start WHEN the handler module is imported
    script = (
        f"import sys, json; import xpi.handlers.{handler}; "
        f"print(json.dumps([m for m in {not_imported!r} if m in sys.modules]))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"POWERTOOLS_TRACE_DISABLED": "true", "PATH": ""},
    )
    # THEN what only other handlers build from did not come with it
    assert json.loads(loaded.stdout) == []


def test_the_ports_import_no_model_at_run_time() -> None:
    # GIVEN a fresh interpreter WHEN the ports module (imported by every handler) is imported
    script = (
        "import sys, json; import xpi.adapters.ports; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('xpi.models', 'xpi.domain.')))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"POWERTOOLS_TRACE_DISABLED": "true", "PATH": ""},
    )
    # THEN no model or domain module came with it: their names are for the type checker
    assert json.loads(loaded.stdout) == []


def test_with_tracing_on_the_init_patches_only_what_xpi_calls_through() -> None:
    # GIVEN tracing on, as on Lambda (Tracing: Active) WHEN the observability module is imported
    script = "import sys, json; import xpi.observability; print(json.dumps('sqlite3' in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "LAMBDA_TASK_ROOT": str(REPO / "functions"), "POWERTOOLS_SERVICE_NAME": "xpi"},
    )
    # THEN the X-Ray SDK patched botocore and http.client, not every library it supports (sqlite3)
    assert json.loads(loaded.stdout) is False
