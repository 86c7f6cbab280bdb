"""The batch workflow's FinishJob makes a finished job's lines final a page per invocation: it starts
each page where the last ended and runs again until the job is collected."""

from tests.unit.tools.test_statemachines import TEMPLATE, deployed_state_machines


def test_finish_job_runs_page_after_page_until_the_job_is_collected() -> None:
    definition, _ = deployed_state_machines()["BatchStateMachine"]
    states = definition["States"]
    finish = states["FinishJob"]
    assert finish["Parameters"] == {"step": "finish", "job.$": "$.job.job", "cursor.$": "$.job.cursor"}
    assert finish["ResultPath"] == "$.job" and finish["Next"] == "JobCollected"
    collected = states["JobCollected"]
    assert collected["Choices"] == [
        {"Variable": "$.job.collected", "BooleanEquals": True, "Next": "AwaitLines"}
    ]
    assert collected["Default"] == "FinishJob"


def test_the_page_size_comes_from_the_template() -> None:
    function = TEMPLATE["Resources"]["BatchJobFunction"]["Properties"]
    assert function["Environment"]["Variables"]["BATCH_JOB_PAGE_LINES"] == {"Ref": "BatchJobPageLines"}
    assert TEMPLATE["Parameters"]["BatchJobPageLines"]["MinValue"] == 1
