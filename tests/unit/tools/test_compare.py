"""`xpi compare`: every prompt through every model, one request each, summarised per model."""

import json
from pathlib import Path
from typing import Any

import pytest
from xpi_tools.compare import compare, load_prompts, reference_score, run, summarise, table


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
