"""The harness's verdicts, without a stack: what counts as a failure of the fault suite."""

from tests.faults.harness import Tally, unrecorded_second_answer


def test_a_clean_tally_has_no_problems() -> None:
    tally = Tally("clean", sent=3, exactly_one=3, dlq=1, dlq_expected=1, failed=1, max_calls=2, max_answers=1)

    # (a request answered Inference Failed is answered: information, not a problem)
    assert tally.problems() == []
    assert tally.row() == "| clean | 3 | 3 | 0 | 0 | 0 | 1 | 1 | 2 | 1 | 0 |"


def test_lost_doubled_stuck_unrecorded_answers_and_a_short_dlq_are_each_problems() -> None:
    tally = Tally(
        "bad",
        sent=5,
        lost=["a"],
        doubled=["b"],
        stuck=["c"],
        unrecorded_answers=["d"],
        misattributed=["inner"],
        dlq=0,
        dlq_expected=1,
    )

    problems = tally.problems()

    assert len(problems) == 6
    assert any("lost" in p and "'a'" in p for p in problems)
    assert any("doubled" in p and "'b'" in p for p in problems)
    assert any("stuck" in p and "'c'" in p for p in problems)
    assert any("second paid Bedrock answer" in p and "'d'" in p for p in problems)
    assert any("nested" in p for p in problems)
    assert any("DLQ" in p for p in problems)


def test_a_second_bedrock_answer_is_acceptable_only_where_lineage_records_it() -> None:
    assert not unrecorded_second_answer(0, None)  # never reached Bedrock (blocked, rejected)
    assert not unrecorded_second_answer(1, {"status": "COMPLETED"})
    assert unrecorded_second_answer(2, {"status": "COMPLETED"})
    assert not unrecorded_second_answer(2, {"status": "COMPLETED", "bedrock_calls_unanswered": 1})
    assert unrecorded_second_answer(3, {"status": "COMPLETED", "bedrock_calls_unanswered": 1})
