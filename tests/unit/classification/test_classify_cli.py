"""`xpi classify` (tools/xpi_tools/classify_cli.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from xpi.domain.policy import Policy, load_default_policy
from xpi.domain.routing import load_default_routing
from xpi.services.classification import classify
from xpi_tools.classify_cli import main

from tests.helpers.events import PAYLOADS, make_request, make_state, request_of
from tests.helpers.fakes import FakeEventPublisher, FakeHashKey


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: bytes = b""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_document_from_file_is_one_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "memo.txt"
    path.write_text("SECRET//NOFORN\n\n(S) The convoy departs at 0400.\n", encoding="utf-8")
    code, out, _ = run([str(path)], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 0
    assert result["decision"] == "block"
    assert result["security_alert"] is True
    assert result["categories"] == {"classified.banner": 1, "classified.portion": 1}
    assert result["findings"][0] == {
        "category": "classified.banner",
        "location": "input",
        "start": 0,
        "end": 14,
        "action": "block",
    }
    assert "redacted_text" not in result


def test_document_from_stdin_is_redacted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["-"], capsys, monkeypatch, stdin=b"Call (202) 555-0173 about SSN 219-45-8832.")
    result = json.loads(out)
    assert (code, result["decision"]) == (0, "redact")
    assert result["redacted_text"] == "Call [REDACTED:PHONE] about SSN [REDACTED:SSN]."


def test_no_argument_reads_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run([], capsys, monkeypatch, stdin=b"the secret ingredient")
    assert (code, json.loads(out)["decision"]) == (0, "allow")


def test_binary_input_is_uninspectable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.7\n\xff\xfe\x00binary")
    code, out, _ = run([str(path)], capsys, monkeypatch)
    assert (code, json.loads(out)["categories"]) == (0, {"content.uninspectable": 1})


def test_jsonl_one_result_per_line_in_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        {"id": "a", "text": "hello"},
        {"id": "b", "text": "SSN 219-45-8832"},
        {"text": "CUI//SP-PRVCY\ncase summary"},
    ]
    stdin = "".join(json.dumps(line) + "\n" for line in lines).encode()
    code, out, _ = run(["--jsonl", "-"], capsys, monkeypatch, stdin=stdin)
    results = jsonl(out)
    assert code == 0
    assert [r["line"] for r in results] == [1, 2, 3]
    assert [r.get("id") for r in results] == ["a", "b", None]
    assert [r["decision"] for r in results] == ["allow", "redact", "block"]
    assert results[1]["findings"] == [{"category": "pii.ssn", "start": 4, "end": 15}]
    assert results[1]["redacted_text"] == "SSN [REDACTED:SSN]"
    assert "redacted_text" not in results[0] and "redacted_text" not in results[2]


def test_jsonl_bad_lines_give_error_lines_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = b'{"text": "fine"}\nnot json\n[1, 2]\n{"txt": "typo"}\n\n\xff\xfe\n{"text": "SECRET//NOFORN"}\n'
    code, out, _ = run(["--jsonl"], capsys, monkeypatch, stdin=stdin)
    results = jsonl(out)
    assert code == 1
    assert len(results) == 7
    assert results[0]["decision"] == "allow"
    errors = [r["error"] for r in results[1:6]]
    assert errors[0].startswith("line 2: not valid JSON")
    assert errors[1] == "line 3: expected a JSON object, got list"
    assert errors[2] == "line 4: missing 'text' string field"
    assert errors[3] == "line 5: empty line"
    assert errors[4].startswith("line 6: not UTF-8")
    assert results[6]["decision"] == "block"  # the run went on after the bad lines


def test_jsonl_from_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "DOB: 03/15/1985"}\r\n', encoding="utf-8")
    code, out, _ = run(["--jsonl", str(path)], capsys, monkeypatch)
    assert (code, jsonl(out)[0]["redacted_text"]) == (0, "DOB: [REDACTED:DOB]")


def test_policy_and_model_flags_apply_model_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a policy that lets ECCN notices go to us.* profiles
    policy = json.loads(
        (Path(__file__).resolve().parents[3] / "functions/xpi/policy/default.json").read_text()
    )
    policy["model_rules"] = [
        {"name": "eccn-us", "models": ["us.*"], "categories": ["export.eccn"], "action": "allow"}
    ]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy), encoding="utf-8")
    # WHEN classifying an ECCN notice for a US profile and for another model
    us = run(
        ["--policy", str(path), "--model", "us.amazon.nova-pro-v1:0"],
        capsys,
        monkeypatch,
        stdin=b"ECCN 3A001.a.2 applies",
    )
    other = run(
        ["--policy", str(path), "--model", "amazon.nova-pro-v1:0"],
        capsys,
        monkeypatch,
        stdin=b"ECCN 3A001.a.2 applies",
    )
    # THEN only the US profile is allowed
    assert json.loads(us[1])["decision"] == "allow"
    assert json.loads(other[1])["decision"] == "block"


def test_invalid_policy_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"default_action": "maybe"}', encoding="utf-8")
    code, out, err = run(["--policy", str(path)], capsys, monkeypatch, stdin=b"x")
    assert (code, out) == (2, "")
    assert "invalid policy" in err


def test_missing_input_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run([str(tmp_path / "nope.txt")], capsys, monkeypatch)
    assert code == 2
    assert "cannot read" in err


def test_unknown_option_returns_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(["--frobnicate"], capsys, monkeypatch)
    assert code == 2
    assert "usage: xpi classify" in err


def test_help_returns_0(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(["--help"], capsys, monkeypatch)
    assert code == 0
    assert "--jsonl" in out


PARITY_TEXTS = [
    "What is the difference between a grant and a cooperative agreement?",
    "Applicant SSN: 219-45-8832. Reply to jordan.alvarez@example.com.",
    "SECRET//NOFORN\n\n(S) The convoy departs at 0400.",
    "CUI\n\nCase summary for the review board.",
    "the secret ingredient is (c) 2024 Acme",
    "ECCN 3A001.a.2 applies; call (202) 555-0173.",
]


# "default" is an alias of a US profile: the model rule applies only when the alias is resolved.
@pytest.mark.parametrize("model", ["default", "us.amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"])
def test_the_cli_decides_as_the_workflow_does(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a policy whose model rule lets ECCN notices go to US profiles (so the model id matters)
    document = load_default_policy().model_dump(mode="json")
    document["model_rules"] = [
        {"name": "eccn-to-us", "models": ["us.*"], "categories": ["export.eccn"], "action": "allow"}
    ]
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(document), encoding="utf-8")

    # WHEN the same texts go through `xpi classify --jsonl` and through the classify step
    stdin = "".join(json.dumps({"text": text}) + "\n" for text in PARITY_TEXTS).encode()
    argv = ["--jsonl", "--policy", str(policy_file), "--model", model, "-"]
    code, out, _ = run(argv, capsys, monkeypatch, stdin=stdin)
    from_cli = [(r["decision"], r["categories"], r.get("redacted_text")) for r in jsonl(out)]

    from_workflow = []
    for text in PARITY_TEXTS:
        state = classify(
            make_state(make_request(prompt=text, model=model)),
            policy=Policy.model_validate(document),
            detectors=(),
            routing=load_default_routing(),
            events=FakeEventPublisher(),
            payloads=PAYLOADS,
            hash_key=FakeHashKey(),
        )
        assert state.classification is not None
        redacted = request_of(state).prompt if state.classification.decision == "redact" else None
        from_workflow.append((state.classification.decision, state.classification.categories, redacted))

    # THEN
    assert code == 0
    assert from_cli == from_workflow
    decisions = {decision for decision, _, _ in from_cli}
    assert decisions == {"allow", "redact", "block"}  # the texts exercise every decision
