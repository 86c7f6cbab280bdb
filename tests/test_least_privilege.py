"""Least privilege, measured: every action a role of the template holds is used by some test on the local
stack, or security/unused-grants.yaml says why it is kept (`xpi iam usage`, docs/security.md).

It reads the IAM call logs the local stacks of this test session wrote (tests/conftest.py points them at
one folder), so it runs after the suites that drive a stack: pytest collects `tests/test_*.py` after the
browser, container, contract and integration folders. Run on its own, or without those suites, it has
nothing to measure and is skipped.
"""

import pytest
from xpi_tools.iam.usage import DEFAULT_REASONS, load_reasons, measure, problems, read_calls

from tests.helpers.stack import ROOT, SESSION_CALL_LOGS

STACK_SUITES = ("tests/integration", "tests/container")
# The local stack deploys the dashboard sign-in (its roles) once `make idp` installed its provider.
SIGN_IN_PARAMETERS = {"DashboardSignIn": "oidc"}


def test_every_granted_action_is_used_or_has_a_reason(request: pytest.FixtureRequest) -> None:
    ran = {str(item.path.relative_to(ROOT)).rsplit("/", 1)[0] for item in request.session.items}
    if not all(suite in ran for suite in STACK_SUITES) or request.session.testsfailed:
        pytest.skip("measured only after a whole, passing run of the integration and container suites")
    # GIVEN every call each role made on the stacks of this session
    calls = read_calls(SESSION_CALL_LOGS)
    assert calls, f"no role calls were recorded under {SESSION_CALL_LOGS}"
    # WHEN they are set against what the template grants
    usage = measure(ROOT / "template.yaml", calls, SIGN_IN_PARAMETERS)
    # THEN no role holds an action that no test used and no reason names
    assert problems(usage, load_reasons(DEFAULT_REASONS)) == []
    # AND no role needed an action it was never granted (tests that strip a permission on purpose deny
    # actions the role otherwise uses, which do not count here)
    assert {role: sorted(u.denied - u.used) for role, u in usage.items() if u.denied - u.used} == {}
