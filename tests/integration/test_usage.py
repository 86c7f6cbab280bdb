"""GET /v1/usage on the local stack: usage and cost by project and model from lineage, as JSON and as CSV,
for operators and the auditor role only; the CSV's figures match the lineage items of the requests."""

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.helpers.stack import LocalStackClient, ResultCollector
from tests.integration.test_compliance import Api, _auditor_keys

pytestmark = pytest.mark.integration
USAGE = "/v1/usage"


def assert_csv_matches_lineage(
    text: str, project: str, items: list[dict[str, Any] | None], *, completed: int, blocked: int
) -> None:
    """The usage CSV's line of the project (grouped by project) adds up to the lineage items of its
    requests: requests, completed, blocked, input and output tokens, dollars."""
    [row] = [r for r in csv.DictReader(io.StringIO(text)) if r["project"] == project]
    done = [i for i in items if i and i["status"] == "COMPLETED"]
    assert (int(row["requests"]), int(row["completed"]), int(row["blocked"])) == (
        len(items),
        completed,
        blocked,
    )
    assert int(row["input_tokens"]) == sum(int(i["usage"]["input_tokens"]) for i in done)
    assert int(row["output_tokens"]) == sum(int(i["usage"]["output_tokens"]) for i in done)
    assert Decimal(row["usd"]) == sum(Decimal(i["estimated_cost_usd"]) for i in done)


@pytest.fixture(scope="module")
def api(local_stack: LocalStackClient) -> Api:
    return Api(local_stack)


def test_usage_by_project_matches_lineage_as_json_and_csv(
    local_stack: LocalStackClient, api: Api, results: ResultCollector
) -> None:
    # GIVEN three requests of a project of their own, two completed and one blocked
    project = f"usage-{uuid.uuid4().hex[:8]}"
    prompts = ["Name three rivers.", "Name three lakes.", "CUI//SP-PRVCY\nRoster of the office."]
    ids = [
        local_stack.send({"model": "default", "prompt": p, "caller": {"project": project}}) for p in prompts
    ]
    for request_id in ids:
        results.wait_for(request_id, timeout_s=90)
    items = [local_stack.lineage(i) for i in ids]
    assert all(item is not None for item in items)
    today = datetime.now(UTC).date().isoformat()

    # WHEN the auditor role asks for today's usage by project, as CSV, and an operator as JSON
    auditor = _auditor_keys(local_stack)
    status, text, headers = api.call(
        auditor, "GET", f"{USAGE}?from={today}&to={today}&group_by=project&format=csv"
    )
    assert status == 200 and headers["Content-Type"].startswith("text/csv"), text
    status, body, _ = api.call(
        api.as_("operator"), "GET", f"{USAGE}?from={today}&to={today}&group_by=project,model"
    )
    assert status == 200, body

    # THEN the project's CSV line adds up to its lineage: requests, blocks, tokens and dollars
    assert_csv_matches_lineage(text, project, items, completed=2, blocked=1)
    # AND the JSON names the same project's model rows
    rows = json.loads(body)["rows"]
    assert {r["group"]["model"] for r in rows if r["group"]["project"] == project} == {
        "us.amazon.nova-lite-v1:0",
        "default",  # the blocked request never resolved its alias
    }
    # AND the JSON's insights have today in their series (other tests' requests count too) and its leaders
    insights = json.loads(body)["insights"]
    [point] = [p for p in insights["series"] if p["bucket"] == today]
    assert point["requests"] >= 3 and point["blocked"] >= 1
    assert [leaders["bucket"] for leaders in insights["leaders"]] == [today]
    assert insights["top_models"] and insights["top_callers"]
    # AND a caller without the operator or auditor policy is refused by IAM
    assert api.call(api.as_("caller2"), "GET", USAGE)[0] == 403
