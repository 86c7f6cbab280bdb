"""The xpi API fuzzed from its own document (api/openapi.yaml) with schemathesis, on the local stack:
requests generated from each operation's parameters and body schemas (valid ones, and invalid ones the
API must turn down), signed with SigV4 as the `operator` principal (the caller and operator policies),
through the local API Gateway. Every answer must be a non-5xx status the operation declares (by name,
not only through `default`), with a body in that status's schema; an undeclared method, API Gateway's
403.

Bounded and repeatable: a fixed number of examples per operation, derandomized (the same cases on every
run). The admin routes are left out: a generated policy would replace the stack's policy, and a redrive
moves the DLQ other tests of the session read (tests/integration/test_api.py drives both)."""

import json
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers.openapi import DOCUMENT
from tests.helpers.stack import ROOT, LocalStackClient

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 30  # per operation (8 operations): under a minute on the local stack


def declared_explicitly(ctx: Any, response: Any, case: Any) -> bool:
    """Stricter than schemathesis's status check, which accepts any status under `default`: the status
    is one the operation names; a method the path does not have gets API Gateway's 403."""
    operations = DOCUMENT["paths"][case.operation.path]
    if case.method.lower() not in operations:
        assert response.status_code == 403, f"{case.method} {case.path}: {response.status_code}"
        assert json.loads(response.content) == {"message": "Missing Authentication Token"}
        return True
    declared = set(operations[case.method.lower()]["responses"]) - {"default"}
    assert str(response.status_code) in declared, f"{case.method} {case.path}: {response.status_code}"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    declared_explicitly,
]

schema = schemathesis.openapi.from_path(ROOT / "api" / "openapi.yaml").exclude(path_regex="^/v1/admin/")


class SigV4(requests.auth.AuthBase):
    """SigV4 for execute-api, as botocore signs (tests/integration/test_api.py signs the same way)."""

    def __init__(self, keys: dict[str, str], region: str) -> None:
        self._credentials = Credentials(
            keys["aws_access_key_id"], keys["aws_secret_access_key"], keys.get("aws_session_token")
        )
        self._region = region

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        headers = {k: v for k, v in request.headers.items() if k.lower() == "content-type"}
        signed = AWSRequest(method=request.method, url=request.url, data=request.body, headers=headers)
        SigV4Auth(self._credentials, "execute-api", self._region).add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        return request


@pytest.fixture(scope="module")
def operator(local_stack: LocalStackClient) -> tuple[str, SigV4]:
    state: dict[str, Any] = local_stack.state
    return state["api"], SigV4(state["api_credentials"]["operator"], state["region"])


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_answer_is_one_the_document_declares(case: Any, operator: tuple[str, SigV4]) -> None:
    base_url, auth = operator
    case.call_and_validate(base_url=base_url, auth=auth, timeout=40, checks=CHECKS)
