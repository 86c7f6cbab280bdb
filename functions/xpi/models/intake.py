"""What the requests queue's consumer keeps about a message it could not accept."""

from pydantic import BaseModel, ConfigDict


class OriginalSender(BaseModel):
    """The producer of a queued message (its SQS SenderId) and the message id it was first sent under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender_id: str
    message_id: str
