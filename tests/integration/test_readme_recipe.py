"""The README's AWS CLI recipe, run as a new user meets it: the bash block under "The local stack",
read from README.md, its placeholders filled with what the running stack printed, run by bash with
the AWS CLI from PyPI (`make awscli`) on PATH and nothing else of this machine's AWS set-up."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.stack import ROOT, SESSION_STACK_LOG, LocalStackClient, ResultCollector

pytestmark = pytest.mark.integration

README = ROOT / "README.md"
AWSCLI_BIN = ROOT / ".xpi" / "tools" / "awscli" / "bin"
ENDPOINT_PLACEHOLDER = "http://127.0.0.1:PORT"
QUEUE_URL_PLACEHOLDER = "QUEUE_URL_IT_PRINTED"


def local_stack_recipe(readme: Path) -> str:
    """The first ```bash block of the README's "## The local stack" section."""
    section = readme.read_text(encoding="utf-8").split("\n## The local stack\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```bash\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert block is not None, "no ```bash block under '## The local stack' in README.md"
    return block.group(1)


def test_the_readme_recipe_sends_a_request_that_ends_as_a_result_event(
    local_stack: LocalStackClient, results: ResultCollector, tmp_path: Path
) -> None:
    # GIVEN the recipe with the endpoint and queue URL the stack printed in place of its placeholders
    recipe = local_stack_recipe(README)
    assert ENDPOINT_PLACEHOLDER in recipe and QUEUE_URL_PLACEHOLDER in recipe
    script = recipe.replace(ENDPOINT_PLACEHOLDER, local_stack.state["aws"]).replace(
        QUEUE_URL_PLACEHOLDER, local_stack.outputs["RequestsQueueUrl"]
    )
    # AND its export lines are the very lines `xpi local up` printed for the user to paste
    printed = {line.strip() for line in SESSION_STACK_LOG.read_text(encoding="utf-8").splitlines()}
    exports = [line for line in script.splitlines() if line.startswith("export ")]
    assert exports and set(exports) <= printed, f"README exports {exports} not among {sorted(printed)}"
    assert (AWSCLI_BIN / "aws").exists(), "no AWS CLI venv: make .xpi/tools/awscli/.installed"

    # WHEN bash runs it in a new user's environment: the CLI on PATH, no AWS config or variables
    no_aws_config = tmp_path / "no-aws-config"
    completed = subprocess.run(
        ["bash", "-e", "-c", script],
        env={
            "PATH": f"{AWSCLI_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "AWS_CONFIG_FILE": str(no_aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(no_aws_config),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # THEN the CLI sent the message (its MessageId becomes the request id)
    assert completed.returncode == 0, f"the recipe failed:\n{completed.stdout}\n{completed.stderr}"
    request_id = json.loads(completed.stdout)["MessageId"]
    # AND it ends as one completed result event for that request
    event = results.wait_for(request_id)
    assert event["detail-type"] == "Inference Completed"
    assert event["detail"]["model"]["requested"] == "default"
    assert event["detail"]["output"]["text"]
    # AND the auditor sees it arrived as a request from the queue
    item = local_stack.lineage(request_id)
    assert item is not None
    assert (item["source"], item["status"]) == ("sqs", "COMPLETED")
