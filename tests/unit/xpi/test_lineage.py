"""The lineage item has one model (xpi.models.lineage) for its claim, final and failure shapes. The claim
is written by the workflow itself (a DynamoDB PutItem in statemachines/inference.asl.json), so these
tests hold the ASL, the table's key schema in template.yaml and the model to one shape."""

import json
import re
import types
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel
from xpi.domain.outcome import lineage_item, result_detail
from xpi.models.lineage import ACCEPTED, LineageItem, LineageStatus
from xpi.models.workflow import Claim

from tests.helpers.events import REPO, make_state, state_from_event

ASL = REPO / "statemachines" / "inference.asl.json"


def claim_item() -> dict[str, dict[str, str]]:
    """The Item of the Claim state's putItem: attribute name -> {DynamoDB type (+ ".$"): value or path}."""
    definition = json.loads(ASL.read_text(encoding="utf-8"))
    claim = definition["States"]["Claim"]
    assert claim["Resource"].endswith(":states:::dynamodb:putItem")
    item: dict[str, dict[str, str]] = claim["Parameters"]["Item"]
    return item


def dynamodb_types(annotation: Any) -> set[str]:
    """The DynamoDB attribute types a field of this Python type is written as (by boto3's serializer)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return set().union(*(dynamodb_types(arg) for arg in get_args(annotation) if arg is not type(None)))
    if origin is Literal:
        return set().union(*(dynamodb_types(type(arg)) for arg in get_args(annotation)))
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return {"M"}
    if origin is list:
        return {"L"}
    if annotation is bool:
        return {"BOOL"}
    if annotation in (int, float, Decimal):
        return {"N"}
    if annotation is str:
        return {"S"}
    raise AssertionError(f"no DynamoDB type known for {annotation!r}")


def resource_block(name: str) -> str:
    """One resource of template.yaml: its lines up to the next resource (or section comment)."""
    lines = (REPO / "template.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index(f"  {name}:")
    end = next(index for index in range(start + 1, len(lines)) if re.match(r"  \S", lines[index]))
    return "\n".join(lines[start:end])


def typed(descriptor: dict[str, str], claim: Claim) -> Any:
    """The value the ASL writes for one attribute, as boto3 reads it back (S -> str, N -> Decimal)."""
    [(kind, value)] = descriptor.items()
    if kind.endswith(".$"):
        value = getattr(claim, value.removeprefix("$.claim."))
    return Decimal(value) if kind.startswith("N") else value


@pytest.mark.parametrize("name", sorted(claim_item()))
def test_every_attribute_the_asl_claim_writes_is_a_field_of_the_model_with_its_type(name: str) -> None:
    [(kind, value)] = claim_item()[name].items()

    assert name in LineageItem.model_fields, f"the ASL claim writes '{name}', which LineageItem lacks"
    annotation = LineageItem.model_fields[name].annotation
    assert kind.removesuffix(".$") in dynamodb_types(annotation), f"{name}: {kind} vs {annotation}"
    if kind.endswith(".$"):  # a path into the workflow state's claim section
        assert re.fullmatch(r"\$\.claim\.\w+", value), value
        assert value.removeprefix("$.claim.") in Claim.model_fields


def test_the_asl_claim_reads_back_as_the_claimed_item() -> None:
    # GIVEN the claim of a validated request, as the Validate step hands it on
    claim = make_state().claim

    # WHEN the item the ASL writes is read back from DynamoDB
    stored = {name: typed(descriptor, claim) for name, descriptor in claim_item().items()}
    item = LineageItem.model_validate({k: int(v) if isinstance(v, Decimal) else v for k, v in stored.items()})

    # THEN it is exactly the model's claim shape (every required field written, status ACCEPTED)
    assert item == LineageItem.claimed(claim)
    assert item.status == ACCEPTED
    assert ACCEPTED in get_args(LineageStatus)


def test_the_table_keys_and_indexes_are_fields_of_the_model_with_their_types() -> None:
    table = resource_block("LineageTable")
    definitions = re.findall(r"\{ AttributeName: (\w+), AttributeType: (\w) \}", table)
    ttl = re.search(r"TimeToLiveSpecification: \{ AttributeName: (\w+)", table)

    assert {name for name, _ in definitions} >= {"request_id", "day", "created_at"}
    for name, kind in definitions:
        assert kind in dynamodb_types(LineageItem.model_fields[name].annotation), name
    assert ttl is not None and dynamodb_types(LineageItem.model_fields[ttl.group(1)].annotation) == {"N"}


@pytest.mark.parametrize(
    "event", ["record/state-completed.json", "record/state-failed.json", "record/state-blocked.json"]
)
def test_a_final_item_keeps_the_claims_identity_and_first_seen_fields(event: str) -> None:
    state = state_from_event(event)

    item = lineage_item(state, result_detail(state, completed_at=datetime(2025, 3, 12, 14, 7, 5, tzinfo=UTC)))

    claimed = LineageItem.claimed(state.claim)
    for name in ("request_id", "created_at", "day", "expires_at", "caller_principal", "source",
                 "model_requested", "request_hmac"):  # fmt: skip
        assert getattr(item, name) == getattr(claimed, name), name
