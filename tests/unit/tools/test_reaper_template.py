"""The reaper's bound follows the inference workflow's longest possible run, and its schedule and role
are what the service needs."""

from typing import Any

from xpi.services.reaping import RUN_GRACE
from xpi.settings import Settings

from tests.unit.tools.test_statemachines import TEMPLATE, deployed_state_machines, function_timeout

# Time between the workflow's own timeout and the reaper's bound: clocks, a claim written late in a run.
MARGIN_S = 60


def _reaper() -> dict[str, Any]:
    properties: dict[str, Any] = TEMPLATE["Resources"]["ReaperFunction"]["Properties"]
    return properties


def test_the_bound_is_past_the_inference_workflows_longest_run() -> None:
    # GIVEN the inference workflow's TimeoutSeconds: no execution runs longer, whatever its retries
    definition, _ = deployed_state_machines()["InferenceStateMachine"]
    longest_run_s = int(definition["TimeoutSeconds"])
    parameter = TEMPLATE["Parameters"]["ReaperAbandonAfterSeconds"]

    # THEN the bound, as deployed and at its smallest allowed value, leaves the workflow its whole run
    assert int(parameter["MinValue"]) >= longest_run_s + MARGIN_S
    assert int(parameter["Default"]) >= longest_run_s + MARGIN_S
    # AND the function is given it, and the functions' own default is the template's
    assert _reaper()["Environment"]["Variables"]["REAPER_ABANDON_AFTER_S"] == {
        "Ref": "ReaperAbandonAfterSeconds"
    }
    assert Settings.model_validate({}).reaper_abandon_after_s == int(parameter["Default"])


def test_a_run_ends_before_a_later_run_may_publish_what_it_left() -> None:
    assert function_timeout("ReaperFunction") < RUN_GRACE.total_seconds()


def test_the_reaper_runs_on_a_schedule_of_the_rate_parameter() -> None:
    ((_, event),) = _reaper()["Events"].items()
    assert event["Type"] == "Schedule"
    assert "ReaperRateMinutes" in str(event["Properties"]["Schedule"])
    assert _reaper()["Handler"] == "xpi.handlers.reap.handler"
