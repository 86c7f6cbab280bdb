"""Errors carry no content: what a failure leaves in lineage, the result event, the Lambda error Step
Functions records and the logs is a code and its fixed message, never request text, an exception's text
or Bedrock's message."""

import json
import logging
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser import event_parser
from xpi.domain.errors import MESSAGES, InternalError, RequestInvalid
from xpi.handlers import classify, contain_errors, record
from xpi.models.request import MAX_TEXT_CHARS
from xpi.models.workflow import WorkflowInput

from tests.helpers.aws import XpiResources
from tests.helpers.context import FakeLambdaContext
from tests.helpers.events import load_event

EMAIL = "al@x.io"  # short, so redaction more than doubles the text


def text_that_outgrows_its_limit() -> str:
    """About 147,000 characters, under MAX_TEXT_CHARS, that grows past it once each address becomes
    `[REDACTED:EMAIL]`."""
    line = f"{EMAIL} "
    text = line * (147_000 // len(line))
    assert len(text) < MAX_TEXT_CHARS < len(text.replace(EMAIL, "[REDACTED:EMAIL]"))
    return text


def rendered_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Every log record as a handler would write it (with any traceback) and with all its attributes."""
    return "\n".join(
        logging.Formatter().format(r) + json.dumps(r.__dict__, default=str) for r in caplog.records
    )


def logged(caplog: pytest.LogCaptureFixture, **fields: str) -> bool:
    return any(all(r.__dict__.get(k) == v for k, v in fields.items()) for r in caplog.records)


def lambda_error_cause(error: Exception) -> str:
    """The Cause a Step Functions Catch records for a Lambda function's uncaught error."""
    return json.dumps({"errorMessage": str(error), "errorType": type(error).__name__, "stackTrace": []})


def test_a_request_that_outgrows_its_limit_when_redacted_fails_without_its_text(
    aws: XpiResources,
    lambda_context: FakeLambdaContext,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a request whose text is valid until its e-mail addresses are redacted
    event = aws.change_request(
        load_event("classify/state-allow.json"),
        messages=[{"role": "user", "content": [{"text": text_that_outgrows_its_limit()}]}],
    )

    # WHEN the classify step redacts it
    with pytest.raises(RequestInvalid) as caught:
        classify.handler(event, lambda_context)

    # THEN it fails as RequestInvalid with the fixed message: what Lambda reports has no request text
    assert type(caught.value).__name__ == "RequestInvalid"
    assert str(caught.value) == MESSAGES["RequestInvalid"]
    assert [tuple(p) for p in caught.value.problems] == [("messages.0.content.0.text", "string_too_long")]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    # AND the workflow's Catch hands that error to RecordOutcome: lineage and the event carry no text
    failed = dict(
        event, error={"Error": type(caught.value).__name__, "Cause": lambda_error_cause(caught.value)}
    )
    result = record.handler(failed, lambda_context)
    detail = result["outcome"]["detail"]
    assert detail["error"] == {"code": "RequestInvalid", "message": MESSAGES["RequestInvalid"]}
    item = aws.lineage_item(event["request"]["request_id"])
    assert item is not None and item["error"] == detail["error"]
    # AND neither the logs nor any of it holds the request's text or pydantic's input_value
    logs = capfd.readouterr().out + rendered_logs(caplog)
    for rendered in (json.dumps(detail), json.dumps(item, default=str), logs):
        assert EMAIL not in rendered
        assert "input_value" not in rendered
    assert logged(caplog, error_code="RequestInvalid", error_class="RequestInvalid")


def test_an_unexpected_exception_leaves_a_handler_as_internal_error_without_its_text(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a handler that fails with an exception quoting its input
    @contain_errors
    def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
        raise ValueError(f"cannot use {event['prompt']!r}")

    # WHEN it runs
    with pytest.raises(InternalError) as caught:
        handler({"prompt": EMAIL}, None)

    # THEN what Lambda reports is the fixed message, without the original or its chain
    assert str(caught.value) == MESSAGES["InternalError"]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    # AND the one log line names the code and the class, not the text
    assert EMAIL not in capfd.readouterr().out + rendered_logs(caplog)
    assert logged(caplog, error_code="InternalError", error_class="ValueError")


def test_an_exception_inside_a_parsed_handler_is_logged_without_its_text(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a handler as the workflow's are stacked: contain_errors above Powertools' event_parser
    @contain_errors
    @event_parser(model=WorkflowInput)
    def handler(event: WorkflowInput, context: object) -> dict[str, Any]:
        raise ValueError(f"cannot use {event.request['prompt']!r}")

    # WHEN it fails with an exception quoting the request
    with caplog.at_level(logging.DEBUG), pytest.raises(InternalError):
        handler(
            {"request": {"prompt": EMAIL}, "source": load_event("classify/state-allow.json")["source"]}, None
        )

    # THEN no logger (Powertools' own included) wrote the text
    assert EMAIL not in capfd.readouterr().out + rendered_logs(caplog)
    assert logged(caplog, error_code="InternalError", error_class="ValueError")


@pytest.mark.parametrize(
    "cause",
    [
        # Bedrock's AccessDenied names the commercial account and IAM user
        "AccessDeniedException: User: arn:aws:iam::210987654321:user/xpi-bedrock-invoker is not authorized",
        # Bedrock's ValidationException can echo the prompt
        f"ValidationException: Malformed input request: {EMAIL}",
    ],
)
def test_a_bedrock_message_in_a_cause_never_reaches_lineage_or_the_event(
    aws: XpiResources, lambda_context: FakeLambdaContext, cause: str
) -> None:
    # GIVEN an older function version reported Bedrock's message in its Lambda error
    event = load_event("record/state-failed.json")
    event["error"] = {"Error": "BedrockRejected", "Cause": json.dumps({"errorMessage": cause})}

    # WHEN RecordOutcome records it
    result = record.handler(event, lambda_context)

    # THEN lineage and the event carry the code and its fixed message only
    expected = {"code": "BedrockRejected", "message": MESSAGES["BedrockRejected"]}
    assert result["outcome"]["detail"]["error"] == expected
    item = aws.lineage_item(event["request"]["request_id"])
    assert item is not None and item["error"] == expected


def test_every_error_code_xpi_raises_has_its_fixed_message() -> None:
    # GIVEN every module of the Lambda package imported, so every XpiError subclass exists
    import importlib
    import pkgutil

    import xpi
    from xpi.domain.errors import MESSAGES, XpiError

    for module in pkgutil.walk_packages(xpi.__path__, "xpi."):
        importlib.import_module(module.name)

    # WHEN the codes of all of them are collected
    def subclasses(cls: type[XpiError]) -> set[type[XpiError]]:
        return {cls} | {sub for child in cls.__subclasses__() for sub in subclasses(child)}

    codes = {error.code for error in subclasses(XpiError)}

    # THEN none falls back to InternalError's message in lineage and events
    assert codes - set(MESSAGES) == set()


def test_a_batch_file_is_refused_with_a_fixed_phrase_saying_why_never_its_content() -> None:
    from xpi.domain.batch import BatchInvalid
    from xpi.domain.errors import rendered_messages

    # GIVEN a refusal whose reason quotes the file, and one naming a phrase outside the fixed set
    named = BatchInvalid("line 1 is 'top secret text'", detail="not JSONL")
    unnamed = BatchInvalid("top secret text", detail="top secret text")

    # THEN the message names the fixed phrase, or nothing, and is one a reader of the cause keeps
    assert str(named) == f"{MESSAGES['BatchInvalid']} (not JSONL)"
    assert str(unnamed) == MESSAGES["BatchInvalid"]
    assert {str(named), str(unnamed)} <= rendered_messages("BatchInvalid")
