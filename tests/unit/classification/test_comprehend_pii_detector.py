"""The Amazon Comprehend PII detector adapter (functions/xpi/adapters/comprehend.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
import pytest
from moto import mock_aws
from xpi.adapters.comprehend import MAX_CHUNK_CHARS, ComprehendPiiDetector, chunks
from xpi.domain.classification import Detection, Segment, classify_segments
from xpi.domain.policy import ComprehendSettings, load_default_policy


class FakeComprehend:
    """Records calls; answers with entities at fixed offsets of each chunk."""

    def __init__(self, entities: list[dict[str, Any]]) -> None:
        self.entities = entities
        self.calls: list[tuple[str, str]] = []

    def detect_pii_entities(self, *, Text: str, LanguageCode: str) -> Mapping[str, Any]:
        self.calls.append((Text, LanguageCode))
        return {"Entities": self.entities}


SETTINGS = ComprehendSettings(enabled=True, min_score=0.8, entity_types=("NAME", "SSN", "ADDRESS"))


def test_entities_become_detections_with_mapped_categories() -> None:
    client = FakeComprehend(
        [
            {"Type": "NAME", "Score": 0.99, "BeginOffset": 0, "EndOffset": 5},
            {"Type": "SSN", "Score": 0.95, "BeginOffset": 10, "EndOffset": 21},
        ]
    )
    detector = ComprehendPiiDetector(SETTINGS, client)
    assert detector.detect("Alice SSN 219-45-8832") == [
        Detection("pii.comprehend.name", 0, 5),
        Detection("pii.ssn", 10, 21),
    ]
    assert client.calls == [("Alice SSN 219-45-8832", "en")]


def test_low_scores_unlisted_types_and_bad_offsets_are_dropped() -> None:
    client = FakeComprehend(
        [
            {"Type": "NAME", "Score": 0.5, "BeginOffset": 0, "EndOffset": 5},
            {"Type": "EMAIL", "Score": 0.99, "BeginOffset": 0, "EndOffset": 5},
            {"Type": "ADDRESS", "Score": 0.99, "BeginOffset": 3, "EndOffset": 500},
            {"Type": "ADDRESS", "Score": 0.99, "BeginOffset": 6, "EndOffset": 6},
        ]
    )
    assert ComprehendPiiDetector(SETTINGS, client).detect("Alice lives here") == []


def test_long_text_is_sent_in_chunks_with_offsets_restored() -> None:
    # GIVEN a text longer than one DetectPiiEntities call accepts
    text = ("word " * (MAX_CHUNK_CHARS // 5 + 100)).rstrip()
    client = FakeComprehend([{"Type": "NAME", "Score": 0.99, "BeginOffset": 0, "EndOffset": 4}])
    # WHEN detected
    found = ComprehendPiiDetector(SETTINGS, client).detect(text)
    # THEN every call stays under the API limit and each chunk's entity maps back to the full text
    assert len(client.calls) == 2
    assert all(len(call[0].encode("utf-8")) <= 100_000 for call in client.calls)
    assert [text[d.start : d.end] for d in found] == ["word", "word"]
    assert found[1].start == len(client.calls[0][0])


def test_chunks_cover_the_text_exactly_and_cut_at_whitespace() -> None:
    text = "abc def " * 10_000
    pieces = list(chunks(text, size=1000))
    assert "".join(piece for _, piece in pieces) == text
    assert all(piece.endswith(" ") for _, piece in pieces[:-1])
    assert [offset for offset, _ in pieces] == [
        sum(len(p) for _, p in pieces[:i]) for i in range(len(pieces))
    ]


def test_blank_chunks_are_not_sent() -> None:
    client = FakeComprehend([])
    assert ComprehendPiiDetector(SETTINGS, client).detect("   \n  ") == []
    assert client.calls == []


def test_detector_plugs_into_classify_segments_and_redacts() -> None:
    client = FakeComprehend([{"Type": "NAME", "Score": 0.99, "BeginOffset": 0, "EndOffset": 5}])
    assessment = classify_segments(
        [Segment(location="messages[0].content[0].text", text="Alice asked for the report.")],
        load_default_policy(),
        "us.anthropic.claude-3-haiku-20240307-v1:0",
        extra_detectors=[ComprehendPiiDetector(SETTINGS, client)],
    )
    assert assessment.decision == "redact"
    assert assessment.redacted == {"messages[0].content[0].text": "[REDACTED:NAME] asked for the report."}


def test_errors_propagate_so_the_caller_fails_closed() -> None:
    class Failing:
        def detect_pii_entities(self, *, Text: str, LanguageCode: str) -> Mapping[str, Any]:
            raise RuntimeError("ThrottlingException")

    with pytest.raises(RuntimeError, match="Throttling"):
        ComprehendPiiDetector(SETTINGS, Failing()).detect("Alice")


@mock_aws
def test_real_boto3_client_request_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a boto3 Comprehend client (moto answers DetectPiiEntities with canned NAME/EMAIL/BANK entities)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-gov-west-1")
    client = boto3.client("comprehend", region_name="us-gov-west-1")
    text = "x" * 400
    settings = ComprehendSettings(enabled=True, min_score=0.9, entity_types=("NAME", "BANK_ACCOUNT_NUMBER"))
    # WHEN the detector calls it
    found = ComprehendPiiDetector(settings, client).detect(text)
    # THEN the real request validates and the configured types come back as detections
    assert found == [
        Detection("pii.comprehend.name", 50, 58),
        Detection("pii.comprehend.bank_account_number", 334, 349),
    ]


def test_client_is_not_created_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise AssertionError("boto3 client created eagerly")

    monkeypatch.setattr(boto3, "client", explode)
    ComprehendPiiDetector(SETTINGS)  # no client needed until detect() is called
