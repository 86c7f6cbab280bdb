"""From what a producer sent to an accepted request with its lineage claim, or a clear rejection."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from xpi.domain import intake
from xpi.domain.errors import RequestInvalid
from xpi.domain.hashing import canonical_sha256, keyed_canonical_hash, sha256_text
from xpi.domain.intake import (
    declared_request_id,
    parse_json_object,
    parse_request,
    rejected_request_id,
    usable_request_id,
)
from xpi.domain.payload import request_bytes
from xpi.models.request import MAX_REQUEST_BYTES, InferenceRequest
from xpi.models.workflow import PayloadRef, RequestHeader, Source, WorkflowState

from tests.helpers.errors import raises_with_reason
from tests.helpers.events import make_request, make_source, sample_request
from tests.helpers.fakes import TEST_HASH_KEY


class TestParseJsonObject:
    def test_a_json_object_as_text_or_bytes(self) -> None:
        body = json.dumps(sample_request("plain-prompt"))

        assert parse_json_object(body) == sample_request("plain-prompt")
        assert parse_json_object(body.encode("utf-8")) == sample_request("plain-prompt")

    def test_size_is_measured_in_utf8_bytes_not_characters(self) -> None:
        # GIVEN fewer characters than the limit, but more bytes (é is two bytes)
        body = json.dumps({"prompt": "é" * (MAX_REQUEST_BYTES // 2)}, ensure_ascii=False)
        assert len(body) < MAX_REQUEST_BYTES < len(body.encode("utf-8"))

        # WHEN / THEN
        with raises_with_reason(RequestInvalid, f"the limit is {MAX_REQUEST_BYTES}"):
            parse_json_object(body)

    def test_exactly_the_limit_is_accepted(self) -> None:
        body = '{"p": "' + "a" * (MAX_REQUEST_BYTES - 9) + '"}'
        assert len(body.encode()) == MAX_REQUEST_BYTES

        assert parse_json_object(body)["p"].startswith("aaa")
        with raises_with_reason(RequestInvalid, f"request is {MAX_REQUEST_BYTES + 1} bytes"):
            parse_json_object(body.replace('"p"', '"pp"'))

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ('{"model": "default", "prompt": ', "request is not valid JSON"),
            ("Hello from SQS!", "request is not valid JSON"),
            (b"\xff\xfe\xfa{}", "request is not valid JSON"),
            ("[1, 2]", "request must be a JSON object, not list"),
            ('"text"', "request must be a JSON object, not str"),
            ("null", "request must be a JSON object, not NoneType"),
        ],
    )
    def test_what_is_not_a_json_object_is_invalid(self, body: str | bytes, expected: str) -> None:
        with raises_with_reason(RequestInvalid, expected) as caught:
            parse_json_object(body)
        assert caught.value.code == "RequestInvalid"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"request_id": "req-batch-0103"}, "req-batch-0103"),
        ({"request_id": "has space"}, None),
        ({"request_id": "x" * 81}, None),
        ({"request_id": 42}, None),
        ({"request_id": None}, None),
        ({"model": "default"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_usable_request_id(raw: dict[str, Any] | None, expected: str | None) -> None:
    assert usable_request_id(raw) == expected


class TestParseRequest:
    def test_fallback_id_is_used_when_the_request_has_none(self) -> None:
        request = parse_request({"model": "default", "prompt": "a"}, fallback_id="5a7c2f8e-3d41-4b6a")

        assert request.request_id == "5a7c2f8e-3d41-4b6a"

    def test_the_clients_id_wins_over_the_fallback(self) -> None:
        request = parse_request(sample_request("plain-prompt"), fallback_id="message-id")

        assert request.request_id == "req-plain-0001"

    def test_an_invalid_client_id_is_not_replaced_by_the_fallback(self) -> None:
        with raises_with_reason(RequestInvalid, "request_id: String should match pattern"):
            parse_request({"request_id": "bad id", "model": "default", "prompt": "a"}, fallback_id="ok-id")

    def test_without_a_fallback_a_fresh_id_is_generated(self) -> None:
        assert len(parse_request({"model": "default", "prompt": "a"}).request_id) == 36

    def test_the_callers_mapping_is_not_modified(self) -> None:
        raw = {"model": "default", "prompt": "a"}

        parse_request(raw, fallback_id="fallback-1")

        assert raw == {"model": "default", "prompt": "a"}

    def test_problems_are_listed_one_per_field(self) -> None:
        with pytest.raises(RequestInvalid) as caught:
            parse_request({"prompt": "a", "temperature": 0.2})

        assert caught.value.reason == (
            "request does not match schema v1: "
            "model: Field required; temperature: Extra inputs are not permitted"
        )


def accept(
    request: InferenceRequest,
    source: Source,
    *,
    now: datetime,
    retention_days: int,
    key: bytes = TEST_HASH_KEY,
) -> WorkflowState:
    """accept() with a payload reference to the stored request and a hash key."""
    body = request_bytes(request)
    payload = PayloadRef(
        bucket="xpi-prod-artifacts", key=f"payloads/{request.request_id}/r.json", bytes=len(body)
    )
    return intake.accept(
        request, source, now=now, retention_days=retention_days, payload=payload, hash_key=key
    )


class TestAccept:
    NOW = datetime(2025, 3, 12, 14, 5, 12, 7429, tzinfo=UTC)

    def test_claim_fields(self) -> None:
        # GIVEN
        request = InferenceRequest.model_validate(sample_request("pii-redact"))
        source = make_source()

        # WHEN
        state = accept(request, source, now=self.NOW, retention_days=400)

        # THEN
        claim = state.claim
        assert claim.request_id == "req-pii-0003"
        assert claim.created_at == "2025-03-12T14:05:12.007+00:00"
        assert claim.day == "2025-03-12"
        assert claim.caller_principal == source.principal
        assert claim.source == "sqs"
        assert claim.model_requested == "fast"  # as requested, before alias resolution
        assert claim.request_hmac == keyed_canonical_hash(TEST_HASH_KEY, request.model_dump(mode="json"))
        assert claim.expires_at == str(int((self.NOW + timedelta(days=400)).timestamp()))

    def test_claim_fields_are_strings_for_the_asl_put_item(self) -> None:
        state = accept(make_request(), make_source(), now=self.NOW, retention_days=1)

        # (claimed_by, the queue workflow's token, is set later and never by the ASL's Claim state)
        assert all(isinstance(value, str) for value in state.claim.model_dump(exclude_none=True).values())

    def test_the_state_carries_request_source_and_first_timings(self) -> None:
        request, source = make_request(), make_source()

        state = accept(request, source, now=self.NOW, retention_days=30)

        assert state.request == RequestHeader.of(request)
        assert state.payload.key == "payloads/req-test-0001/r.json"
        assert "Summarise" not in state.model_dump_json()  # the body stays behind the reference
        assert state.source == source
        assert state.timings == {"received_at": source.received_at, "validated_at": self.NOW}
        assert state.classification is None and state.route is None and state.response is None

    def test_equal_requests_hash_equally_and_different_ones_do_not(self) -> None:
        source = make_source()
        one = accept(make_request(prompt="a"), source, now=self.NOW, retention_days=1).claim.request_hmac
        same = accept(make_request(prompt="a"), source, now=self.NOW, retention_days=1).claim.request_hmac
        other = accept(make_request(prompt="b"), source, now=self.NOW, retention_days=1).claim.request_hmac

        assert one == same != other

    def test_the_same_request_under_two_keys_hashes_differently_and_never_as_plain_sha256(self) -> None:
        # GIVEN a short, guessable prompt
        request, source = make_request(prompt="Say yes."), make_source()

        # WHEN two stacks (two hash keys) accept it
        one = accept(request, source, now=self.NOW, retention_days=1, key=b"k" * 32).claim.request_hmac
        two = accept(request, source, now=self.NOW, retention_days=1, key=b"q" * 32).claim.request_hmac

        # THEN the hashes differ, and neither is a plain SHA-256 anyone could compute by guessing
        assert one != two
        plain = {canonical_sha256(request.model_dump(mode="json")), sha256_text("Say yes.")}
        assert not plain & {one, two}


class TestDeclaredRequestId:
    LONG = "x" * 210_000

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ({"prompt": LONG, "request_id": "after-the-prompt"}, "after-the-prompt"),
            ({"request_id": "before", "prompt": LONG}, "before"),
            ({"caller": {"request_id": "nested"}, "prompt": LONG}, None),
            ({"messages": [{"request_id": "in-a-list"}], "prompt": LONG}, None),
            ({"prompt": '{"request_id": "quoted"} ' + LONG}, None),
            ({"request_id": "bad id!", "prompt": LONG}, None),
            ({"request_id": 42, "prompt": LONG}, None),
            ([{"request_id": "in-an-array"}], None),
        ],
        ids=["after", "before", "nested", "in-list", "quoted", "malformed", "not-a-string", "array"],
    )
    def test_only_a_well_formed_top_level_id_counts(self, body: object, expected: str | None) -> None:
        assert declared_request_id(json.dumps(body)) == expected

    def test_an_escaped_key_and_the_last_of_duplicate_keys_count_as_json_reads_them(self) -> None:
        body = '{"request\\u005fid": "first", "p": "' + self.LONG + '", "request_id": "last"}'

        assert declared_request_id(body) == json.loads(body)["request_id"] == "last"
        assert declared_request_id(body.encode()) == "last"

    def test_the_id_of_a_body_that_parses_is_read_from_it_and_a_small_unparsable_one_has_none(self) -> None:
        assert rejected_request_id("{}", {"request_id": "parsed-1"}) == "parsed-1"
        assert rejected_request_id('{"request_id": "r-1", "model": ', None) is None
