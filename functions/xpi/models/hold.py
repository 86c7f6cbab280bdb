"""A queued request the consumer held back (xpi.domain.queue_hold): sent to the requests queue again,
delayed, by the consumer's own role, with this mark as a message attribute. SQS sets a message's
SenderId from the credentials that sent it, so a mark is believed only on a message the consumer's role
sent (QUEUE_HOLDER_ROLE_IDS); on any other message it is ignored."""

from pydantic import BaseModel, ConfigDict, Field

from xpi.models.intake import OriginalSender

ATTRIBUTE = "xpi-hold"


class HoldMark(BaseModel):
    """Who first sent the message, under which message id and when, and how often it was held."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: OriginalSender
    sent_timestamp_ms: int = Field(ge=0)
    holds: int = Field(0, ge=0)


class HeldMessage(BaseModel):
    """A message to send back to the queue: its body as received, and its mark for the next receive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str
    body: str
    mark: HoldMark
