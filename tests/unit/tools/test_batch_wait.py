"""The batch workflow's wait for its last line has a heartbeat, and its timeout leads to the
reconciliation, which finishes the batch or waits again."""

from typing import Any

from tests.unit.tools.test_statemachines import TEMPLATE, deployed_state_machines


def _states() -> dict[str, Any]:
    definition, _ = deployed_state_machines()["BatchStateMachine"]
    states: dict[str, Any] = definition["States"]
    return states


def test_the_wait_times_out_by_its_heartbeat_into_the_reconciliation() -> None:
    wait = _states()["AwaitLines"]
    assert wait["Resource"].endswith(":::lambda:invoke.waitForTaskToken")
    assert wait["HeartbeatSecondsPath"] == "$.split.heartbeat_s"
    first_catch = wait["Catch"][0]
    assert first_catch == {
        "ErrorEquals": ["States.HeartbeatTimeout", "States.Timeout"],
        "ResultPath": None,
        "Next": "Reconcile",
    }


def test_the_reconciliation_finishes_the_batch_or_waits_again_or_fails_it() -> None:
    states = _states()
    reconcile = states["Reconcile"]
    assert reconcile["ResultPath"] == "$.reconcile" and reconcile["Next"] == "AllLinesDone"
    assert reconcile["Parameters"] == {"batch_id.$": "$.batch.batch_id", "state.$": "$"}
    assert {c["Next"] for c in reconcile["Catch"]} == {"RecordFailure"}  # BatchStalled among them
    choice = states["AllLinesDone"]
    assert choice["Choices"] == [
        {"Variable": "$.reconcile.finished", "BooleanEquals": True, "Next": "Assemble"}
    ]
    assert choice["Default"] == "AwaitLines"


def test_the_heartbeat_comes_from_the_template_through_the_split() -> None:
    split = TEMPLATE["Resources"]["BatchSplitFunction"]["Properties"]["Environment"]["Variables"]
    assert split["BATCH_HEARTBEAT_S"] == {"Ref": "BatchHeartbeatSeconds"}
    reconcile = TEMPLATE["Resources"]["BatchReconcileFunction"]["Properties"]
    assert reconcile["Handler"] == "xpi.handlers.batch_reconcile.handler"
    assert reconcile["Environment"]["Variables"]["BATCH_MAX_STALLED_ROUNDS"] == {
        "Ref": "BatchMaxStalledRounds"
    }
    # Rounds x heartbeat outlast the reaper's bound: a stuck line is ended (and counted) first
    parameters = TEMPLATE["Parameters"]
    assert int(parameters["BatchHeartbeatSeconds"]["Default"]) * int(
        parameters["BatchMaxStalledRounds"]["Default"]
    ) > int(parameters["ReaperAbandonAfterSeconds"]["Default"])
