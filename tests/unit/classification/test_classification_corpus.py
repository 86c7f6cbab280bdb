"""The labelled corpus (tests/corpus): the issue's accuracy targets, measured through `xpi classify --jsonl`.

Run ``python tests/corpus/report.py`` for the per-category precision / recall table; this test prints it too
(``pytest -s``) and asserts the targets.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPORT = Path(__file__).resolve().parents[2] / "corpus" / "report.py"


def _report_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("xpi_corpus_report", REPORT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return _report_module()


@pytest.fixture(scope="module")
def evaluation(report: ModuleType) -> Any:
    return report.evaluate(report.load_corpus())


def test_corpus_is_large_enough_and_mostly_hard(report: ModuleType) -> None:
    documents = report.load_corpus()
    allow = [d for d in documents if d.decision == "allow"]
    assert len(documents) >= 200
    assert sum(d.near_miss for d in allow) * 2 >= len(allow)
    assert {d.decision for d in documents} == {"allow", "redact", "block"}
    assert all(d.text.strip() for d in documents)
    assert all(not d.categories for d in allow)
    assert all(d.categories for d in documents if d.decision != "allow")


def test_every_block_case_blocks(evaluation: Any) -> None:
    missed = [
        d.id
        for d in evaluation.documents
        if d.decision == "block" and d.expected_to_pass and evaluation.decisions[d.id] != "block"
    ]
    assert missed == []


def test_adversarial_section_is_reported_on_its_own_row(report: ModuleType, evaluation: Any) -> None:
    documents = [d for d in evaluation.documents if d.source == "adversarial.txt"]
    assert sum(d.decision == "block" for d in documents) >= 30
    assert any(d.normalized for d in documents)
    rows = report.format_report(evaluation).splitlines()
    assert any(row.startswith("adversarial ") for row in rows)


def test_allow_case_false_positives_at_most_two_percent(evaluation: Any) -> None:
    allow = [d for d in evaluation.documents if d.decision == "allow"]
    false_positives = [d.id for d in allow if evaluation.decisions[d.id] != "allow"]
    assert len(false_positives) <= 0.02 * len(allow), false_positives


def test_every_redact_case_redacts(evaluation: Any) -> None:
    wrong = [
        d.id
        for d in evaluation.documents
        if d.decision == "redact" and d.expected_to_pass and evaluation.decisions[d.id] != "redact"
    ]
    assert wrong == []


def test_print_precision_recall(report: ModuleType, evaluation: Any) -> None:
    table = report.format_report(evaluation)
    print("\n" + table)
    assert "precision" in table


def test_corpus_parser_rejects_malformed_files(report: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("=== id=x decision=maybe categories=\ntext\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad decision"):
        report.load_corpus(tmp_path)
    (tmp_path / "bad.txt").write_text(
        "=== id=x decision=allow categories=\na\n=== id=x decision=allow categories=\nb\n"
    )
    with pytest.raises(ValueError, match="duplicate"):
        report.load_corpus(tmp_path)
