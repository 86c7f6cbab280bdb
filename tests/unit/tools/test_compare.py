"""`xpi compare`: every prompt through every model, one request each, summarised per model."""

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xpi_tools.compare import (
    compare,
    judge_prompt,
    load_prompts,
    parse_grade,
    percentile,
    reference_score,
    run,
    summarise,
    table,
)


def test_the_reference_score_is_the_token_f1() -> None:
    assert reference_score("The Columbia River.", "the columbia river") == 1.0
    assert reference_score("Columbia", "The Columbia River") == 0.5
    assert reference_score("Snake", "The Columbia River") == 0.0


class FakeGate:
    """POST /v1/invoke as the gate answers it: a per-model answer text, a FAILED model, and a 400."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        self.bodies.append(body)
        if body["model"] == "broken":
            return 200, {"status": "FAILED", "error": {"code": "BedrockThrottled"}, "model": {}}, 30.0
        if body["model"] == "unknown":
            return 400, {"error": {"code": "RequestInvalid"}}, 5.0
        text = "Sacramento" if body["model"] == "govcloud" else "Sacramento is the capital"
        return (
            200,
            {
                "status": "COMPLETED",
                "model": {"resolved": f"id-of-{body['model']}"},
                "output": {"text": text},
                "usage": {"input_tokens": 10, "output_tokens": 4, "estimated_cost_usd": 0.001},
            },
            100.0 if body["model"] == "govcloud" else 200.0,
        )


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    rows = [
        {"id": "capital", "prompt": "Capital of California?", "expected": "Sacramento is the capital"},
        {"id": "open", "prompt": "Say something."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_every_prompt_goes_through_every_model_once_and_is_summarised(prompts: Path) -> None:
    gate = FakeGate()
    models = ["default", "govcloud", "broken", "unknown"]

    outcomes = run(load_prompts(prompts), models, gate)

    assert [(b["model"], b["prompt"]) for b in gate.bodies] == [
        (m, p) for p in ("Capital of California?", "Say something.") for m in models
    ]
    assert len({b["request_id"] for b in gate.bodies}) == 8  # one request each
    by_model = {s.model: s for s in summarise(outcomes, models)}
    assert (by_model["default"].completed, by_model["default"].score) == (2, 1.0)
    assert by_model["govcloud"].score == 0.4  # "Sacramento" against four expected words
    assert (by_model["govcloud"].p50_latency_ms, by_model["default"].p50_latency_ms) == (100.0, 200.0)
    assert (by_model["default"].input_tokens, by_model["default"].cost_usd) == (20, 0.002)
    assert (by_model["broken"].errors, by_model["broken"].score) == (2, 0.0)
    assert by_model["unknown"].errors == 2
    assert [o.status for o in outcomes if o.model == "unknown"] == ["HTTP 400", "HTTP 400"]


def test_the_table_and_the_json_say_the_same(prompts: Path) -> None:
    printed = compare(prompts, ["default", "govcloud"], FakeGate())
    assert printed.splitlines()[0].split("|")[1].strip() == "model"
    assert [line.split("|")[1].strip() for line in printed.splitlines()[2:]] == ["default", "govcloud"]
    as_json = json.loads(compare(prompts, ["default", "govcloud"], FakeGate(), as_json=True))
    assert [m["model"] for m in as_json["models"]] == ["default", "govcloud"]
    assert len(as_json["requests"]) == 4
    assert table([]).count("\n") == 1


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ("8", 8),
        (" 10\n", 10),
        ("Grade: 7/10", 7),
        ("I would give it a 3.", 3),
        ("1", 1),
        ("0", None),
        ("11", None),
        ("7.5", None),
        ("-3", None),
        ("+4", None),
        ("seven", None),
        ("", None),
        (None, None),
    ],
)
def test_the_grade_is_the_first_number_when_an_integer_from_1_to_10(reply: str | None, grade: int) -> None:
    assert parse_grade(reply) == grade


@given(st.text())
def test_a_grade_is_always_missing_or_an_integer_from_1_to_10(reply: str) -> None:
    grade = parse_grade(reply)
    assert grade is None or (isinstance(grade, int) and 1 <= grade <= 10)


@given(st.integers(min_value=1, max_value=10), st.text(alphabet=st.characters(categories=["L", "Zs", "P"])))
def test_a_grade_followed_by_words_is_read(grade: int, words: str) -> None:
    assert parse_grade(f"{grade} {words}") == grade


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1))
def test_the_p95_is_one_of_the_values_and_between_the_median_and_the_max(values: list[float]) -> None:
    p95 = percentile(values, 95)
    assert p95 in values and percentile(values, 50) <= p95 <= max(values)


def test_the_judge_prompt_carries_the_question_the_answer_and_the_expected_answer() -> None:
    graded = judge_prompt("Capital of California?", "Sacramento", "Sacramento is the capital")
    assert "Capital of California?" in graded and "Sacramento is the capital" in graded
    assert "single integer from 1" in graded
    assert "Expected answer" not in judge_prompt("Say something.", "Hello")


class JudgedGate(FakeGate):
    """The gate, where the `judge` model grades with the replies given, one per call, in order."""

    def __init__(self, replies: list[tuple[int, dict[str, Any]]]) -> None:
        super().__init__()
        self.replies = replies

    def __call__(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        if body["model"] != "judge":
            return super().__call__(body)
        self.bodies.append(body)
        return (*self.replies.pop(0), 50.0)


def judged(text: str, cost: float = 0.0005) -> tuple[int, dict[str, Any]]:
    return 200, {"status": "COMPLETED", "output": {"text": text}, "usage": {"estimated_cost_usd": cost}}


def test_every_answer_is_judged_through_the_gate_and_a_bad_grade_counts_as_missing(prompts: Path) -> None:
    # GIVEN a judge that grades 9, then 8, then says no number, then fails (one reply per answer, in order)
    gate = JudgedGate(
        [
            judged("9"),  # capital, default
            judged("Grade: 8/10"),  # capital, govcloud
            judged("I cannot grade this"),  # open, default
            (200, {"status": "BLOCKED", "error": {"code": "PolicyBlocked"}, "usage": {}}),  # open, govcloud
        ]
    )
    models = ["default", "govcloud", "broken"]

    outcomes = run(load_prompts(prompts), models, gate, judge="judge")

    # THEN each completed answer got one judge request of its own (the broken model's errors none)
    judge_bodies = [b for b in gate.bodies if b["model"] == "judge"]
    assert len(judge_bodies) == 4 and not gate.replies
    assert all(b["request_id"].startswith("cmp-judge-") for b in judge_bodies)
    assert "Sacramento is the capital" in judge_bodies[0]["prompt"]  # the expected answer
    by_model = {s.model: s for s in summarise(outcomes, models)}
    assert (by_model["default"].judge_score, by_model["default"].judged) == (9.0, 1)
    assert (by_model["govcloud"].judge_score, by_model["govcloud"].judged) == (8.0, 1)
    assert (by_model["broken"].judge_score, by_model["broken"].judged) == (None, 0)
    assert by_model["default"].judge_cost_usd == 0.001  # the judge's requests cost too
    assert by_model["default"].cost_usd == 0.002  # apart from the compared requests


def test_without_a_judge_nothing_is_judged(prompts: Path) -> None:
    gate = FakeGate()
    outcomes = run(load_prompts(prompts), ["default"], gate)
    assert all(b["model"] == "default" for b in gate.bodies)
    assert {(o.judge_score, o.judge_cost_usd) for o in outcomes} == {(None, 0.0)}


def test_the_whole_run_prints_the_judge_column_and_saves_the_json(prompts: Path, tmp_path: Path) -> None:
    gate = JudgedGate([judged("7"), judged("5")])
    saved = tmp_path / "compare" / "latest.json"

    printed = compare(prompts, ["default"], gate, judge="judge", output=saved)

    header = [c.strip() for c in printed.splitlines()[0].split("|")[1:-1]]
    row = dict(zip(header, [c.strip() for c in printed.splitlines()[2].split("|")[1:-1]], strict=True))
    assert (row["F1"], row["judge (graded)"], row["p95 ms"]) == ("1.000", "6.00 (2)", "200.0")
    result = json.loads(saved.read_text(encoding="utf-8"))
    assert result["judge"] == "judge" and result["models"][0]["judged"] == 2
    assert [r["judge_score"] for r in result["requests"]] == [7, 5]
