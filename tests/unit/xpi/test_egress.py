"""Egress paths to commercial Bedrock: the choice (xpi.domain.egress), the failover gateway and the
health check (xpi.services.egress), the shared breaker in DynamoDB (xpi.adapters.path_states)."""

import http.server
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import boto3
import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import ValidationError
from xpi.adapters.bedrock import BotoBedrockGateway
from xpi.adapters.path_probe import HttpPathProbe
from xpi.adapters.path_states import DynamoPathStates
from xpi.domain.egress import (
    EgressPath,
    EgressPaths,
    PathState,
    after_failure,
    after_success,
    available,
    latency_percentile,
    ranked,
)
from xpi.domain.errors import BedrockAnswerLost, BedrockUnavailable, BedrockUnreachable
from xpi.domain.payload import native_body
from xpi.models.bedrock import ModelAnswer
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route, Usage
from xpi.services.egress import PathFailoverGateway, check_paths

from tests.helpers.events import sample_request
from tests.helpers.fakes import FakeCredentials

ROUTE = Route(
    model_id="anthropic.claude-3-haiku-20240307-v1:0", region="us-east-1", endpoint="", api="converse"
)
NOW = 1_800_000_000.0


def paths(*names: str, **options: float) -> EgressPaths:
    return EgressPaths.model_validate(
        {
            "region": "us-east-1",
            "paths": [{"name": name, "endpoint": f"https://{name}.bedrock.example"} for name in names],
            **options,
        }
    )


def request() -> InferenceRequest:
    return InferenceRequest.model_validate(sample_request("converse-system"))


# ---------------------------------------------------------------------------------------------- fakes
@dataclass
class FakePathStates:
    """The shared path states, in memory, with the domain's breaker arithmetic."""

    states: dict[str, PathState] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    successes: list[str] = field(default_factory=list)
    reads: int = 0

    def read(self, names: Sequence[str]) -> dict[str, PathState]:
        self.reads += 1
        return {name: self.states[name] for name in names if name in self.states}

    def record_failure(self, name: str, *, threshold: int, open_for_s: float, now: float) -> None:
        self.failures.append(name)
        config = EgressPaths(region="r", failure_threshold=threshold, open_for_s=open_for_s)
        self.states[name] = after_failure(self.states.get(name), name, config, now)

    def record_success(self, name: str) -> None:
        self.successes.append(name)
        self.states[name] = after_success(self.states.get(name), name)

    def record_health(self, name: str, *, healthy: bool, latency_ms: int | None, now: float) -> None:
        state = self.states.get(name) or PathState(name=name)
        update: dict[str, object] = {"health": "healthy" if healthy else "unhealthy", "checked_at": now}
        update["latency_ms"] = latency_ms
        if healthy:
            update |= {"failures": 0, "open_until": None}
        self.states[name] = state.model_copy(update=update)


@dataclass
class PathGateway:
    """One path's Bedrock: answers, or raises `error`; counts the calls that reached it."""

    error: Exception | None = None
    endpoints: list[str] = field(default_factory=list)

    def answer(self, route: Route, request: InferenceRequest) -> ModelAnswer:
        self.endpoints.append(route.endpoint)
        if self.error is not None:
            raise self.error
        return ModelAnswer(text="ok", usage=Usage(), latency_ms=5, credential_version="v1")


@dataclass
class Network:
    config: EgressPaths
    states: FakePathStates = field(default_factory=FakePathStates)
    gateways: dict[str, PathGateway] = field(default_factory=dict)
    direct: PathGateway = field(default_factory=PathGateway)
    now: float = NOW

    def gateway(self) -> PathFailoverGateway:
        for path in self.config.paths:
            self.gateways.setdefault(path.name, PathGateway())
        return PathFailoverGateway(
            lambda: self.config,
            self.states,
            lambda path: self.gateways[path.name],
            self.direct,
            clock=lambda: self.now,
        )


# ---------------------------------------------------------------------------------------------- the choice
class TestChoice:
    def test_without_health_data_the_list_order_is_the_priority(self) -> None:
        config = paths("direct-connect", "vpn", "internet")

        assert [p.name for p in ranked(config, {}, NOW)] == ["direct-connect", "vpn", "internet"]

    def test_a_later_path_faster_by_more_than_the_step_comes_first(self) -> None:
        # GIVEN internet first in the list at 80 ms and a private link at 20 ms (step 50 ms per place)
        config = paths("internet", "vpn")
        states = {
            "internet": PathState(name="internet", health="healthy", latency_ms=80, checked_at=NOW),
            "vpn": PathState(name="vpn", health="healthy", latency_ms=20, checked_at=NOW),
        }

        # WHEN / THEN the lower latency wins (20 + 50 < 80)
        assert ranked(config, states, NOW)[0].name == "vpn"
        # and a gain smaller than the step keeps the priority
        states["internet"] = states["internet"].model_copy(update={"latency_ms": 60})
        assert ranked(config, states, NOW)[0].name == "internet"

    def test_an_open_breaker_or_a_failed_check_puts_a_path_last(self) -> None:
        config = paths("vpn", "internet")
        open_breaker = {"vpn": PathState(name="vpn", failures=1, open_until=NOW + 10)}
        unhealthy = {"vpn": PathState(name="vpn", health="unhealthy", checked_at=NOW - 5)}

        assert [p.name for p in ranked(config, open_breaker, NOW)] == ["internet", "vpn"]
        assert [p.name for p in ranked(config, unhealthy, NOW)] == ["internet", "vpn"]

    def test_a_breaker_whose_time_passed_and_a_stale_check_count_no_more(self) -> None:
        config = paths("vpn", "internet")
        expired = PathState(name="vpn", failures=1, open_until=NOW - 1)
        stale = PathState(name="vpn", health="unhealthy", checked_at=NOW - config.health_fresh_for_s - 1)

        assert available(expired, NOW, config.health_fresh_for_s)
        assert available(stale, NOW, config.health_fresh_for_s)

    def test_the_breaker_opens_at_the_threshold_and_a_success_closes_it(self) -> None:
        config = paths("vpn", failure_threshold=2, open_for_s=30)

        once = after_failure(None, "vpn", config, NOW)
        twice = after_failure(once, "vpn", config, NOW)

        assert once.open_until is None
        assert twice.open_until == NOW + 30
        assert after_success(twice, "vpn").open_until is None
        assert after_success(twice, "vpn").failures == 0

    @settings(max_examples=200, deadline=None)
    @given(
        order=st.permutations(["internet", "vpn", "direct-connect"]),
        facts=st.lists(
            st.tuples(
                st.booleans(),  # breaker open
                st.sampled_from(["healthy", "unhealthy", "unknown"]),
                st.one_of(st.none(), st.integers(min_value=0, max_value=2000)),
            ),
            min_size=3,
            max_size=3,
        ),
    )
    def test_every_path_is_ranked_once_and_the_available_ones_first(
        self, order: list[str], facts: list[tuple[bool, str, int | None]]
    ) -> None:
        config = paths(*order)
        states = {
            name: PathState(
                name=name,
                open_until=NOW + 5 if is_open else None,
                health=health,  # type: ignore[arg-type]
                latency_ms=latency,
                checked_at=NOW,
            )
            for name, (is_open, health, latency) in zip(order, facts, strict=True)
        }

        result = [p.name for p in ranked(config, states, NOW)]

        assert sorted(result) == sorted(order)
        flags = [available(states[name], NOW, config.health_fresh_for_s) for name in result]
        assert flags == sorted(flags, reverse=True)  # no available path after an unavailable one
        # the unavailable ones keep the list's order
        assert [n for n in result if not available(states[n], NOW, 180)] == [
            n for n in order if not available(states[n], NOW, 180)
        ]

    def test_percentiles_are_nearest_rank(self) -> None:
        samples = [float(v) for v in range(1, 101)]

        assert latency_percentile(samples, 50) == 50
        assert latency_percentile(samples, 95) == 95
        assert latency_percentile([7.0], 95) == 7


class TestConfiguration:
    def test_a_plain_http_endpoint_off_this_machine_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="must be https"):
            EgressPath(name="vpn", endpoint="http://10.0.0.5")

    def test_a_plain_http_proxy_off_this_machine_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="must be https"):
            EgressPath(name="vpn", endpoint="https://vpce.example", https_proxy="http://proxy.example:3128")

    def test_each_path_is_named_once(self) -> None:
        with pytest.raises(ValidationError, match="named once"):
            paths("vpn", "vpn")

    def test_the_shipped_default_has_no_path(self) -> None:
        assert EgressPaths().paths == []

    def test_a_path_proxy_goes_into_the_client_config(self) -> None:
        gateway = BotoBedrockGateway(
            FakeCredentials(), timeout_s=60, https_proxy="https://proxy.example:3128"
        )

        assert gateway._config.proxies == {
            "https": "https://proxy.example:3128",
            "http": "https://proxy.example:3128",
        }
        assert BotoBedrockGateway(FakeCredentials(), timeout_s=60)._config.proxies is None

    def test_a_path_connect_timeout_goes_into_its_client_config(self) -> None:
        # GIVEN a private link whose connect may take 1 s (a blackholed link fails over after it)
        path = EgressPath(name="vpn", endpoint="https://vpce.example", connect_timeout_s=1.0)

        # WHEN its gateway is built as the composition root builds it
        gateway = BotoBedrockGateway(
            FakeCredentials(), timeout_s=60, connect_timeout_s=path.connect_timeout_s
        )

        # THEN its connects time out after 1 s; a path without one keeps the adapter's 3 s
        assert gateway._config.connect_timeout == 1.0
        assert EgressPath(name="internet", endpoint="https://bedrock.example").connect_timeout_s == 3.0
        with pytest.raises(ValidationError):
            EgressPath(name="vpn", endpoint="https://vpce.example", connect_timeout_s=30)


# ---------------------------------------------------------------------------------------------- failover
class TestFailover:
    def test_the_call_goes_over_the_first_path_and_names_it(self) -> None:
        network = Network(paths("vpn", "internet"))

        answer = network.gateway().answer(ROUTE, request())

        assert answer.egress_path == "vpn"
        assert network.gateways["vpn"].endpoints == ["https://vpn.bedrock.example"]
        assert network.gateways["internet"].endpoints == []
        assert network.states.failures == [] and network.states.successes == []  # no write when healthy

    def test_a_path_that_could_not_connect_fails_over_with_one_call_each(self) -> None:
        # GIVEN the preferred path refusing connections (nothing sent)
        network = Network(paths("vpn", "internet"))
        gateway = network.gateway()
        network.gateways["vpn"].error = BedrockUnreachable(
            "EndpointConnectionError reaching commercial Bedrock"
        )

        # WHEN a request is answered
        answer = gateway.answer(ROUTE, request())

        # THEN over the next path, one attempt per path, the failure counted on the shared breaker
        assert answer.egress_path == "internet"
        assert len(network.gateways["vpn"].endpoints) == 1
        assert len(network.gateways["internet"].endpoints) == 1
        assert network.states.failures == ["vpn"]
        # and the next request (same instance) goes straight to the fallback path
        gateway.answer(ROUTE, request())
        assert len(network.gateways["vpn"].endpoints) == 1

    def test_another_function_sees_the_open_breaker(self) -> None:
        network = Network(paths("vpn", "internet"))
        network.gateways["vpn"] = PathGateway(error=BedrockUnreachable("refused"))
        network.gateway().answer(ROUTE, request())

        # WHEN another function instance (its own gateway, the same shared states) calls
        answer = network.gateway().answer(ROUTE, request())

        # THEN it skips the path whose breaker is open
        assert answer.egress_path == "internet"
        assert len(network.gateways["vpn"].endpoints) == 1

    @pytest.mark.parametrize(
        "error",
        [
            BedrockAnswerLost("ReadTimeoutError"),
            BedrockUnavailable("5xx", bedrock_code="InternalServerException"),
        ],
        ids=["answer-lost", "bedrock-error"],
    )
    def test_a_call_that_may_have_reached_bedrock_is_never_sent_again(self, error: Exception) -> None:
        # GIVEN the preferred path's call sent (its answer lost, or Bedrock's own error)
        network = Network(paths("vpn", "internet"))
        gateway = network.gateway()
        network.gateways["vpn"].error = error

        # WHEN / THEN the error goes to the workflow and no second path is tried (no second paid call)
        with pytest.raises(type(error)):
            gateway.answer(ROUTE, request())
        assert network.gateways["internet"].endpoints == []
        assert network.states.failures == []

    def test_every_path_unreachable_raises_the_retryable_error(self) -> None:
        network = Network(paths("vpn", "internet"))
        gateway = network.gateway()
        for name in ("vpn", "internet"):
            network.gateways[name].error = BedrockUnreachable("refused")

        with pytest.raises(BedrockUnreachable) as caught:
            gateway.answer(ROUTE, request())
        assert caught.value.code == "BedrockUnavailable"  # what the workflow retries
        assert network.states.failures == ["vpn", "internet"]

    def test_it_fails_back_once_the_breaker_time_passed_and_the_path_answers(self) -> None:
        # GIVEN the preferred path's breaker opened by a failure
        network = Network(paths("vpn", "internet", open_for_s=30))
        network.gateways["vpn"] = PathGateway(error=BedrockUnreachable("refused"))
        network.gateway().answer(ROUTE, request())
        network.gateways["vpn"].error = None  # the link is back

        # WHEN the breaker's time has passed
        network.now += 31
        answer = network.gateway().answer(ROUTE, request())

        # THEN the call goes over it again, and the success closes its breaker for everyone
        assert answer.egress_path == "vpn"
        assert network.states.successes == ["vpn"]
        assert network.states.states["vpn"].failures == 0

    def test_a_healthy_check_fails_back_before_the_breaker_time(self) -> None:
        network = Network(paths("vpn", "internet", open_for_s=300))
        network.gateways["vpn"] = PathGateway(error=BedrockUnreachable("refused"))
        network.gateway().answer(ROUTE, request())
        network.gateways["vpn"].error = None

        # WHEN the health check finds the path answering
        check_paths(
            network.config, FixedProbe({"vpn": 12.0, "internet": 70.0}), network.states, clock=lambda: NOW
        )

        # THEN the next call takes it again
        assert network.gateway().answer(ROUTE, request()).egress_path == "vpn"

    def test_a_route_in_another_region_goes_to_its_own_endpoint(self) -> None:
        network = Network(paths("vpn", "internet"))
        other = ROUTE.model_copy(update={"region": "us-west-2"})

        answer = network.gateway().answer(other, request())

        assert answer.egress_path is None
        assert network.direct.endpoints == [""]

    def test_without_paths_every_call_is_direct(self) -> None:
        network = Network(EgressPaths())

        assert network.gateway().answer(ROUTE, request()).egress_path is None
        assert network.states.reads == 0

    def test_the_states_are_read_at_most_once_a_second(self) -> None:
        network = Network(paths("vpn", "internet"))
        gateway = network.gateway()

        for _ in range(5):
            gateway.answer(ROUTE, request())
        network.now += 1.5
        gateway.answer(ROUTE, request())

        assert network.states.reads == 2


# ---------------------------------------------------------------------------------------------- health
@dataclass
class FixedProbe:
    latencies: dict[str, float]
    failing: set[str] = field(default_factory=set)

    def probe(self, path: EgressPath) -> float:
        if path.name in self.failing:
            raise ConnectionRefusedError
        return self.latencies[path.name]


class TestHealthCheck:
    def test_each_path_is_probed_and_its_verdict_stored(self) -> None:
        states = FakePathStates()
        probe = FixedProbe({"vpn": 20.0, "internet": 80.0}, failing={"vpn"})

        report = check_paths(paths("vpn", "internet"), probe, states, clock=lambda: NOW)

        by_name = {health.name: health for health in report.paths}
        assert not by_name["vpn"].healthy and by_name["vpn"].errors == 3
        assert by_name["vpn"].error_class == "ConnectionRefusedError"
        assert by_name["internet"].healthy and by_name["internet"].latency_p50_ms == 80
        assert states.states["vpn"].health == "unhealthy"
        assert states.states["internet"].latency_ms == 80

    def test_without_paths_nothing_is_probed(self) -> None:
        assert check_paths(EgressPaths(), FixedProbe({}), FakePathStates()).paths == []


# ---------------------------------------------------------------------------------------------- DynamoDB
@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        boto3.client("dynamodb", region_name="us-gov-west-1").create_table(
            TableName="pacing",
            AttributeDefinitions=[{"AttributeName": "bucket", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "bucket", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield "pacing"


@pytest.fixture(autouse=False)
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-gov-west-1")


@pytest.mark.usefixtures("region")
class TestDynamoPathStates:
    def test_the_breaker_opens_once_at_the_threshold_and_a_success_closes_it(self, table: str) -> None:
        states = DynamoPathStates(table)

        states.record_failure("vpn", threshold=2, open_for_s=30, now=NOW)
        assert states.read(["vpn"])["vpn"].open_until is None
        states.record_failure("vpn", threshold=2, open_for_s=30, now=NOW)
        states.record_failure("vpn", threshold=2, open_for_s=30, now=NOW + 5)  # open already: not moved

        opened = states.read(["vpn", "internet"])
        assert opened["vpn"].failures == 3
        assert opened["vpn"].open_until == NOW + 30
        assert "internet" not in opened

        states.record_success("vpn")
        closed = states.read(["vpn"])["vpn"]
        assert closed.failures == 0 and closed.open_until is None

    def test_a_success_on_a_clean_path_writes_nothing(self, table: str) -> None:
        states = DynamoPathStates(table)

        states.record_success("internet")

        assert states.read(["internet"]) == {}

    def test_a_healthy_check_stores_its_latency_and_closes_the_breaker(self, table: str) -> None:
        states = DynamoPathStates(table)
        states.record_failure("vpn", threshold=1, open_for_s=300, now=NOW)

        states.record_health("vpn", healthy=True, latency_ms=21, now=NOW + 1)

        state = states.read(["vpn"])["vpn"]
        assert state.health == "healthy" and state.latency_ms == 21 and state.checked_at == NOW + 1
        assert state.open_until is None and state.failures == 0
        assert available(state, NOW + 2, 180)


# ---------------------------------------------------------------------------------------------- the probe
class TestHttpProbe:
    def test_any_http_answer_is_a_working_path_and_a_refused_one_raises(self) -> None:
        class Refusing(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # Bedrock answers an unsigned request with an error: still an answer
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        try:
            probe = HttpPathProbe(timeout_s=2)
            latency = probe.probe(EgressPath(name="vpn", endpoint=f"http://127.0.0.1:{server.server_port}"))
            assert 0 <= latency < 2000
            with pytest.raises(urllib3.exceptions.NewConnectionError):
                probe.probe(EgressPath(name="internet", endpoint=f"http://127.0.0.1:{closed_port}"))
        finally:
            server.shutdown()


# ---------------------------------------------------------------------------------------------- the wire
class _Bedrock(http.server.BaseHTTPRequestHandler):
    """InvokeModel on loopback, keeping each request's Connection header and client port."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, int]] = []
    ANSWER = b'{"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}'

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append((self.headers.get("Connection", ""), self.client_address[1]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.ANSWER)))
        self.send_header("X-Amzn-Bedrock-Input-Token-Count", "3")
        self.send_header("X-Amzn-Bedrock-Output-Token-Count", "1")
        if self.headers.get("Connection", "").lower() == "close":
            # as HTTP servers (and AWS's) answer it: the client then never reuses a connection being closed
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(self.ANSWER)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def bedrock() -> Iterator[str]:
    _Bedrock.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bedrock)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


class TestWire:
    def route(self, endpoint: str) -> Route:
        return Route(model_id="anthropic.claude", region="us-east-1", endpoint=endpoint, api="invoke_model")

    def test_the_bytes_of_a_call_are_counted_and_go_to_the_path_metrics(
        self, bedrock: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN a gateway calling a Bedrock on loopback, as one egress path's
        emitted: list[tuple[str, float, str]] = []
        monkeypatch.setattr(
            "xpi.services.egress.path_metric",
            lambda name, _unit, value, path: emitted.append((name, value, path)),
        )
        gateway = BotoBedrockGateway(FakeCredentials(), timeout_s=10)
        network = Network(
            EgressPaths.model_validate(
                {"region": "us-east-1", "paths": [{"name": "vpn", "endpoint": bedrock}]}
            )
        )
        network.gateways["vpn"] = gateway  # type: ignore[assignment]

        # WHEN a call goes over the path
        answer = network.gateway().answer(self.route(bedrock), request())

        # THEN the request (line, headers, body) and the answer (headers, body) were counted
        assert answer.bytes_sent is not None and answer.bytes_received is not None
        assert answer.bytes_sent > len(native_body(request()))
        assert answer.bytes_received > len(_Bedrock.ANSWER)
        # AND emitted with the path as dimension
        assert ("EgressBytesSent", answer.bytes_sent, "vpn") in emitted
        assert ("EgressBytesReceived", answer.bytes_received, "vpn") in emitted

    def test_without_keep_alive_each_call_has_a_connection_of_its_own(self, bedrock: str) -> None:
        # GIVEN two gateways, one keeping connections alive (the default) and one not
        kept = BotoBedrockGateway(FakeCredentials(), timeout_s=10)
        fresh = BotoBedrockGateway(FakeCredentials(), timeout_s=10, keep_alive=False)

        # WHEN each makes two calls
        for gateway in (kept, kept, fresh, fresh):
            gateway.answer(self.route(bedrock), request())

        # THEN the kept-alive calls shared one connection; each of the others asked for its own
        (kept_1, port_1), (kept_2, port_2), (fresh_1, port_3), (fresh_2, port_4) = _Bedrock.seen
        assert port_1 == port_2 and kept_1 == kept_2 == ""
        assert fresh_1 == fresh_2 == "close" and len({port_2, port_3, port_4}) == 3
