"""What a function's cold start imports: a module only some functions use is imported where it is used,
not by every handler through the composition root (bench/bench_cold_start.py measures the cost)."""

import json
import subprocess
import sys

import pytest

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
