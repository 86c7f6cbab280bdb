"""The API's refusal of a request id minted for another region (xpi.domain.regions): POST /v1/requests
and POST /v1/invoke answer 400 before anything is written, started or claimed, so the lineage replica
of the region the id belongs to is never overwritten from here."""

import json
from datetime import UTC, datetime

import pytest
from xpi.domain.errors import RequestInvalid
from xpi.services import api, sync_invoke
from xpi.services.submission import Submitter

from tests.helpers.events import sample_request
from tests.helpers.fakes import FakeEventPublisher, FakeLineageStore, FakeWorkflowStarter
from tests.unit.xpi.test_sync_invoke import World

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EAST_ID = "us-gov-east-1.0123abcd"


def test_a_submit_of_another_regions_id_is_refused_before_anything_is_written_or_started() -> None:
    starter, lineage, events = FakeWorkflowStarter(), FakeLineageStore(), FakeEventPublisher()
    submitter = Submitter(
        starter=starter, lineage=lineage, events=events, retention_days=30, region="us-gov-west-1"
    )
    body = json.dumps({**sample_request("converse-system"), "request_id": EAST_ID})

    with pytest.raises(RequestInvalid) as refused:
        api.start(body, principal="arn:p", api_request_id="api-1", now=NOW, submitter=submitter)

    assert refused.value.problems[0].type == "other_region" and refused.value.request_id == EAST_ID
    assert (starter.started, lineage.items, events.published) == ({}, {}, [])
    # AND this region's own ids, and ids naming none, start as before
    for request_id in ("us-gov-west-1.0123abcd", "it-0123abcd"):
        ok = json.dumps({**sample_request("converse-system"), "request_id": request_id})
        api.start(ok, principal="arn:p", api_request_id="api-1", now=NOW, submitter=submitter)
    assert set(starter.started) == {"us-gov-west-1.0123abcd", "it-0123abcd"}


def test_a_sync_invoke_of_another_regions_id_is_refused_before_its_claim() -> None:
    world = World()
    world.ports = sync_invoke.SyncPorts(**{**world.ports.__dict__, "govcloud_region": "us-gov-west-1"})

    with pytest.raises(RequestInvalid):
        world.invoke({**sample_request("converse-system"), "request_id": EAST_ID})

    assert world.lineage.items == {} and world.gateway.calls == [] and world.events.published == []
