"""BotoBedrockGateway: requests in Bedrock's shape, answers and errors in the workflow's vocabulary.

Real bedrock-runtime clients are built by the gateway as in production; botocore's Stubber answers
them before anything is signed or sent.
"""

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.response import StreamingBody
from botocore.stub import Stubber
from xpi.adapters import bedrock as bedrock_module
from xpi.adapters.bedrock import BotoBedrockGateway
from xpi.domain.errors import (
    MESSAGES,
    BedrockAnswerLost,
    BedrockRejected,
    BedrockThrottled,
    BedrockUnavailable,
    BedrockUnreachable,
    CredentialsRejected,
    CredentialsUnavailable,
)
from xpi.domain.payload import outbound_bytes
from xpi.models.request import InferenceRequest
from xpi.models.workflow import Route

from tests.helpers.errors import raises_with_reason
from tests.helpers.events import sample_request
from tests.helpers.fakes import FakeCredentials

ROUTE = Route(
    model_id="us.anthropic.claude-3-5-haiku-20241022-v1:0", region="us-east-1", endpoint="", api="converse"
)
NATIVE_ROUTE = Route(
    model_id="us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    region="us-east-1",
    endpoint="",
    api="invoke_model",
)

Script = Callable[[Stubber], None]


@dataclass
class StubbedClients:
    """Each bedrock-runtime client the gateway creates gets the next script of stubbed answers."""

    scripts: list[Script] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    stubbers: list[Stubber] = field(default_factory=list)

    def session(self, botocore_session: Any) -> Any:
        real = boto3.Session(botocore_session=botocore_session)

        def client(service: str, **kwargs: Any) -> Any:
            made = real.client(service, **kwargs)  # type: ignore[call-overload]
            self.created.append(kwargs)
            stubber = Stubber(made)
            self.scripts.pop(0)(stubber)
            stubber.activate()
            self.stubbers.append(stubber)
            return made

        return SimpleNamespace(client=client)


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubbedClients]:
    stubbed = StubbedClients()
    # botocore's Stubber cannot build an event stream: a ConverseStream answer's `stream` is stubbed as
    # the list of events botocore's EventStream would yield.
    validate = Stubber._validate_operation_response

    def validate_but_streams(self: Stubber, operation_name: str, response: Any) -> None:
        if operation_name != "ConverseStream":
            validate(self, operation_name, response)

    monkeypatch.setattr(Stubber, "_validate_operation_response", validate_but_streams)
    monkeypatch.setattr(bedrock_module, "boto3", SimpleNamespace(Session=stubbed.session))
    yield stubbed
    for stubber in stubbed.stubbers:
        stubber.assert_no_pending_responses()


def converse_events(text: str = "Agency staff approve each stage.") -> list[dict[str, Any]]:
    """A ConverseStream's events, as botocore yields them, the text in two chunks."""
    half = len(text) // 2
    return [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": text[:half]}}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": text[half:]}}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {
            "metadata": {
                "usage": {"inputTokens": 118, "outputTokens": 52, "totalTokens": 170},
                "metrics": {"latencyMs": 1184},
            }
        },
    ]


def converse_response(text: str = "Agency staff approve each stage.") -> dict[str, Any]:
    return {"stream": converse_events(text)}


def error(
    code: str, status: int = 400, message: str | None = None, method: str = "converse_stream"
) -> Script:
    return lambda stubber: stubber.add_client_error(
        method,
        service_error_code=code,
        service_message=message or f"{code} from commercial Bedrock",
        http_status_code=status,
    )


def answers(*steps: Script) -> Script:
    def script(stubber: Stubber) -> None:
        for step in steps:
            step(stubber)

    return script


def ok(text: str = "Agency staff approve each stage.") -> Script:
    return lambda stubber: stubber.add_response("converse_stream", converse_response(text))


def converse_request() -> InferenceRequest:
    return InferenceRequest.model_validate(sample_request("converse-system"))


class TestConverse:
    def test_the_request_is_sent_in_converse_shape(self, clients: StubbedClients) -> None:
        # GIVEN Bedrock expecting exactly these parameters
        request = converse_request()
        expected = {
            "modelId": ROUTE.model_id,
            "messages": request.converse_messages(),
            "inferenceConfig": {
                "maxTokens": 300,
                "temperature": 0.3,
                "topP": 0.9,
                "stopSequences": ["</answer>"],
            },
            "system": [{"text": request.system[0]}],
        }
        clients.scripts.append(
            lambda s: s.add_response("converse_stream", converse_response(), expected_params=expected)
        )

        # WHEN
        answer = BotoBedrockGateway(FakeCredentials(), timeout_s=60).answer(ROUTE, request)

        # THEN
        assert answer.text == "Agency staff approve each stage."
        assert answer.stop_reason == "end_turn"
        assert (answer.usage.input_tokens, answer.usage.output_tokens) == (118, 52)
        assert answer.latency_ms == 1184
        assert answer.credential_version == "v-1111"
        assert answer.body is None
        # AND what was sent is what the classify step hashes (the route's modelId aside)
        assert json.loads(outbound_bytes(request)) == {k: v for k, v in expected.items() if k != "modelId"}

    def test_optional_settings_are_left_out_when_unset(self, clients: StubbedClients) -> None:
        request = InferenceRequest(request_id="r-1", model="default", prompt="Hello")
        expected = {
            "modelId": ROUTE.model_id,
            "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
            "inferenceConfig": {"maxTokens": 1024},
        }
        clients.scripts.append(
            lambda s: s.add_response("converse_stream", converse_response(), expected_params=expected)
        )

        BotoBedrockGateway(FakeCredentials(), timeout_s=60).answer(ROUTE, request)

    def test_the_client_uses_the_route_and_the_commercial_keys(self, clients: StubbedClients) -> None:
        clients.scripts.append(ok())
        route = ROUTE.model_copy(
            update={"region": "us-west-2", "endpoint": "https://bedrock-runtime.vpce.example"}
        )

        BotoBedrockGateway(FakeCredentials(), timeout_s=45).answer(route, converse_request())

        [created] = clients.created
        assert created["region_name"] == "us-west-2"
        assert created["endpoint_url"] == "https://bedrock-runtime.vpce.example"
        assert created["aws_access_key_id"] == "AKIAEXAMPLE000000000"
        # a streamed answer: the read timeout is the gap allowed between two chunks
        assert created["config"].read_timeout == bedrock_module.STREAM_IDLE_TIMEOUT_S
        assert created["config"].retries == {"mode": "standard", "total_max_attempts": 1}

    def test_an_api_key_is_sent_as_a_bearer_token(self, clients: StubbedClients) -> None:
        clients.scripts.append(ok())

        answer = BotoBedrockGateway(FakeCredentials(kind="api_key"), timeout_s=60).answer(
            ROUTE, converse_request()
        )

        [created] = clients.created
        assert created["config"].signature_version == "bearer"
        assert "aws_access_key_id" not in created
        assert answer.credential_version == "v-1111"

    def test_one_client_is_reused_across_calls(self, clients: StubbedClients) -> None:
        clients.scripts.append(answers(ok("one"), ok("two")))
        gateway = BotoBedrockGateway(FakeCredentials(), timeout_s=60)

        first = gateway.answer(ROUTE, converse_request())
        second = gateway.answer(ROUTE, converse_request())

        assert (first.text, second.text) == ("one", "two")
        assert len(clients.created) == 1


class TestInvokeModel:
    def test_the_native_body_goes_as_is_and_tokens_come_from_headers(self, clients: StubbedClients) -> None:
        # GIVEN
        request = InferenceRequest.model_validate(sample_request("invoke-model-anthropic"))
        answer_body = {
            "id": "msg_bdrk_01",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "text", "text": "The system shall process 1,000 requests per second at peak."}
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 61, "output_tokens": 17},
        }
        raw = json.dumps(answer_body).encode()
        expected = {
            "modelId": NATIVE_ROUTE.model_id,
            "body": json.dumps(request.body).encode("utf-8"),
            "contentType": "application/json",
            "accept": "application/json",
        }
        clients.scripts.append(
            lambda s: s.add_response(
                "invoke_model",
                {
                    "body": StreamingBody(io.BytesIO(raw), len(raw)),
                    "contentType": "application/json",
                    "ResponseMetadata": {
                        "HTTPStatusCode": 200,
                        "HTTPHeaders": {
                            "x-amzn-bedrock-input-token-count": "61",
                            "x-amzn-bedrock-output-token-count": "17",
                        },
                    },
                },
                expected_params=expected,
            )
        )

        # WHEN
        answer = BotoBedrockGateway(FakeCredentials(), timeout_s=60).answer(NATIVE_ROUTE, request)

        # THEN
        assert answer.body == answer_body
        assert answer.text is None
        assert expected["body"] == outbound_bytes(request)  # the very bytes the classify step hashes
        assert answer.stop_reason == "end_turn"
        assert (answer.usage.input_tokens, answer.usage.output_tokens) == (61, 17)

    def test_errors_are_translated_for_invoke_model_too(self, clients: StubbedClients) -> None:
        clients.scripts.append(error("ThrottlingException", 429, method="invoke_model"))
        request = InferenceRequest.model_validate(sample_request("invoke-model-anthropic"))

        with pytest.raises(BedrockThrottled):
            BotoBedrockGateway(FakeCredentials(), timeout_s=60).answer(NATIVE_ROUTE, request)


class TestErrorTranslation:
    @pytest.mark.parametrize(
        ("code", "status", "expected"),
        [
            ("ThrottlingException", 429, BedrockThrottled),
            ("ServiceQuotaExceededException", 400, BedrockThrottled),
            ("ModelTimeoutException", 408, BedrockUnavailable),
            ("ServiceUnavailableException", 503, BedrockUnavailable),
            ("InternalServerException", 500, BedrockUnavailable),
            ("ModelNotReadyException", 429, BedrockUnavailable),
            ("ValidationException", 400, BedrockRejected),
            ("ResourceNotFoundException", 404, BedrockRejected),
        ],
    )
    def test_bedrock_errors_become_workflow_errors(
        self, clients: StubbedClients, code: str, status: int, expected: type[Exception]
    ) -> None:
        clients.scripts.append(error(code, status))
        credentials = FakeCredentials()

        with pytest.raises(expected) as caught:
            BotoBedrockGateway(credentials, timeout_s=60).answer(ROUTE, converse_request())

        # The class name is the workflow's error name (the ASL retries and catches on it)
        assert type(caught.value).__name__ == expected.__name__
        # AND it carries Bedrock's code, never Bedrock's message
        assert caught.value.bedrock_code == code
        assert str(caught.value) == f"{MESSAGES[expected.__name__]} ({code})"
        assert "from commercial Bedrock" not in repr(caught.value)
        assert credentials.reads == [False]  # no credential refresh for these

    def test_rejected_credentials_are_refreshed_once_then_reported(self, clients: StubbedClients) -> None:
        # GIVEN Bedrock refuses the cached keys and the freshly read ones alike
        clients.scripts += [
            error("UnrecognizedClientException", 403),
            error("UnrecognizedClientException", 403),
        ]
        credentials = FakeCredentials()

        # WHEN / THEN
        with pytest.raises(CredentialsRejected) as caught:
            BotoBedrockGateway(credentials, timeout_s=60).answer(ROUTE, converse_request())
        assert caught.value.bedrock_code == "UnrecognizedClientException"
        assert credentials.reads == [False, True]
        assert [c["aws_access_key_id"] for c in clients.created] == [
            "AKIAEXAMPLE000000000",
            "AKIAEXAMPLE000000001",
        ]

    def test_rotated_credentials_succeed_after_one_refresh(self, clients: StubbedClients) -> None:
        clients.scripts += [error("ExpiredTokenException", 403), ok()]
        credentials = FakeCredentials()

        answer = BotoBedrockGateway(credentials, timeout_s=60).answer(ROUTE, converse_request())

        assert answer.credential_version == "v-2222"
        assert credentials.reads == [False, True]

    def test_a_refresh_that_finds_the_same_version_reuses_its_client(self, clients: StubbedClients) -> None:
        clients.scripts.append(
            answers(error("InvalidSignatureException", 403), error("InvalidSignatureException", 403))
        )
        credentials = FakeCredentials(versions=["only-version"])

        with pytest.raises(CredentialsRejected):
            BotoBedrockGateway(credentials, timeout_s=60).answer(ROUTE, converse_request())
        assert len(clients.created) == 1

    def test_access_denied_after_a_refresh_is_a_rejection_not_a_credentials_problem(
        self, clients: StubbedClients
    ) -> None:
        # GIVEN valid keys without access to this model
        clients.scripts += [error("AccessDeniedException", 403), error("AccessDeniedException", 403)]

        with pytest.raises(BedrockRejected) as caught:
            BotoBedrockGateway(FakeCredentials(), timeout_s=60).answer(ROUTE, converse_request())
        assert caught.value.bedrock_code == "AccessDeniedException"

    @pytest.mark.parametrize(
        "message",
        [
            "Authentication failed: Please make sure your API Key is valid.",
            "Invalid API Key format: Must start with pre-defined prefix",
        ],
    )
    def test_a_refused_api_key_ends_as_rejected_credentials_after_one_re_read(
        self, clients: StubbedClients, message: str
    ) -> None:
        # GIVEN Bedrock refuses the API key (revoked, expired) before and after the secret is read again
        clients.scripts += [
            error("AccessDeniedException", 403, message),
            error("AccessDeniedException", 403, message),
        ]
        credentials = FakeCredentials(kind="api_key")

        # WHEN / THEN the request fails closed as a credentials problem, like a refused access key
        with pytest.raises(CredentialsRejected) as caught:
            BotoBedrockGateway(credentials, timeout_s=60).answer(ROUTE, converse_request())
        assert caught.value.bedrock_code == "AccessDeniedException"
        assert credentials.reads == [False, True]
        assert "API Key" not in repr(caught.value)

    def test_bedrocks_message_never_leaves_the_adapter(self, clients: StubbedClients) -> None:
        # GIVEN Bedrock answers AccessDenied naming the commercial account and IAM user, as it does
        denied = (
            "User: arn:aws:iam::210987654321:user/xpi-bedrock-invoker is not authorized to perform: "
            "bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/x"
        )
        clients.scripts += [
            error("AccessDeniedException", 403, denied),
            error("AccessDeniedException", 403, denied),
        ]

        # WHEN the gateway translates it
        with pytest.raises(BedrockRejected) as caught:
            BotoBedrockGateway(FakeCredentials(), timeout_s=60).answer(ROUTE, converse_request())

        # THEN nothing of the message is on the error: not its text, reason, repr or chain
        for text in (str(caught.value), caught.value.message, caught.value.reason, repr(caught.value)):
            assert "210987654321" not in text and "xpi-bedrock-invoker" not in text
        assert caught.value.__cause__ is None and caught.value.__suppress_context__

    def test_an_unreadable_secret_is_unavailable_and_bedrock_is_not_called(
        self, clients: StubbedClients
    ) -> None:
        class Unreadable:
            def get(self, *, refresh: bool = False) -> Any:
                raise CredentialsUnavailable(
                    "cannot read the commercial credentials secret: GetParameterError"
                )

        with pytest.raises(CredentialsUnavailable):
            BotoBedrockGateway(Unreadable(), timeout_s=60).answer(ROUTE, converse_request())
        assert clients.created == []

    def test_no_error_message_carries_the_secret(self, clients: StubbedClients) -> None:
        clients.scripts += [
            error("UnrecognizedClientException", 403),
            error("UnrecognizedClientException", 403),
        ]

        with pytest.raises(CredentialsRejected) as caught:
            BotoBedrockGateway(FakeCredentials(), timeout_s=60).answer(ROUTE, converse_request())

        assert "wJalrXUtnFEMI" not in str(caught.value)


class TestTransportErrors:
    class FailingClient:
        def __init__(self, error: Exception) -> None:
            self.error = error
            self.calls = 0

        def converse_stream(self, **_: Any) -> Any:
            self.calls += 1
            raise self.error

    URL = "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse"

    def _gateway(self, monkeypatch: pytest.MonkeyPatch, client: Any) -> BotoBedrockGateway:
        gateway = BotoBedrockGateway(FakeCredentials(), timeout_s=60)
        monkeypatch.setattr(gateway, "_client", lambda route, credentials: client)
        return gateway

    def test_a_read_timeout_is_a_lost_answer_never_retried(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # GIVEN a call that was sent and whose answer did not come back in time
        client = self.FailingClient(ReadTimeoutError(endpoint_url=self.URL))

        # WHEN / THEN it is a lost answer (the workflow does not retry it: Bedrock may have billed it),
        # reported to callers as BedrockUnavailable, and the gateway itself made one call
        with raises_with_reason(
            BedrockAnswerLost, "ReadTimeoutError waiting for commercial Bedrock"
        ) as caught:
            self._gateway(monkeypatch, client).answer(ROUTE, converse_request())
        assert caught.value.code == "BedrockUnavailable"
        assert client.calls == 1

    def test_a_connection_closed_mid_answer_is_a_lost_answer(self, monkeypatch: pytest.MonkeyPatch) -> None:
        client = self.FailingClient(ConnectionClosedError(endpoint_url=self.URL))

        with pytest.raises(BedrockAnswerLost):
            self._gateway(monkeypatch, client).answer(ROUTE, converse_request())

    @pytest.mark.parametrize(
        "error",
        [ConnectTimeoutError(endpoint_url=URL), EndpointConnectionError(endpoint_url=URL)],
        ids=["connect-timeout", "unreachable"],
    )
    def test_a_failed_connect_is_transient(self, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
        # GIVEN a call that never connected (nothing was sent: a retry cannot be a second paid call)
        client = self.FailingClient(error)

        # WHEN / THEN it is BedrockUnavailable, which the workflow retries, and not a lost answer: it is
        # unreachable, the one error another egress path may take over
        with pytest.raises(BedrockUnavailable) as caught:
            self._gateway(monkeypatch, client).answer(ROUTE, converse_request())
        assert not isinstance(caught.value, BedrockAnswerLost)
        assert isinstance(caught.value, BedrockUnreachable)
        assert caught.value.code == "BedrockUnavailable"

    def test_the_connect_timeout_is_short_and_the_read_timeout_the_configured_one(self) -> None:
        gateway = BotoBedrockGateway(FakeCredentials(), timeout_s=120)

        assert gateway._config.connect_timeout <= 5
        assert gateway._config.read_timeout == 120


class TestEndpointOverride:
    def test_credentials_never_go_to_a_plain_http_endpoint(self, clients: StubbedClients) -> None:
        # GIVEN a route (carried in the workflow state) naming a plain-http endpoint off this machine
        route = ROUTE.model_copy(update={"endpoint": "http://bedrock-runtime.us-east-1.amazonaws.com"})

        # WHEN / THEN the gateway refuses before it builds a client with the credentials
        with pytest.raises(ValueError, match="must be https"):
            BotoBedrockGateway(FakeCredentials(), timeout_s=60).answer(route, converse_request())
        assert clients.created == []

    def test_the_local_emulator_on_loopback_is_reached_over_http(self, clients: StubbedClients) -> None:
        clients.scripts.append(error("ValidationException", 400))
        route = ROUTE.model_copy(update={"endpoint": "http://127.0.0.1:18600"})

        with pytest.raises(BedrockRejected):
            BotoBedrockGateway(FakeCredentials(), timeout_s=60).answer(route, converse_request())
        assert [c["endpoint_url"] for c in clients.created] == ["http://127.0.0.1:18600"]
