"""Who sent a queued request, also after a DLQ redrive.

SQS re-sends redriven messages as new messages (a new message id) from the principal that started the
move task: the admin function's role for `POST /v1/admin/dlq/redrive`. Attributing such a message to
its SenderId would make the redriver the caller (its routing, its ownership). So the consumer remembers
the SenderId and message id of every message it could not accept (the ones that can reach the DLQ),
keyed by a keyed hash (HMAC with the stack's hash key) of the message body, which the move keeps; a
message from a redriver is attributed to what was remembered for its body, and one with nothing
remembered is refused (it returns to the DLQ), never run as the redriver.
"""

from datetime import datetime, timedelta

from xpi.adapters.ports import HashKey, IntakeRecords
from xpi.domain.errors import XpiError
from xpi.domain.hashing import keyed_hash
from xpi.domain.ownership import owner_of
from xpi.models.intake import OriginalSender

DLQ_RETENTION = timedelta(days=14)  # RequestsDLQ's MessageRetentionPeriod: a redrive comes within it


class RedriveUnattributed(XpiError):
    code = "RedriveUnattributed"


def body_key(body: str, hash_key: HashKey) -> str:
    """Keyed, as every hash of content xpi keeps: a plain SHA-256 of a short body could be guessed."""
    return keyed_hash(hash_key.get(), body)


def original_sender(
    body: str,
    sender: OriginalSender,
    redrivers: tuple[str, ...],
    records: IntakeRecords,
    hash_key: HashKey,
) -> OriginalSender:
    """The message's own sender, or for a redriven message (sent by a redriver role) its original one."""
    if owner_of(sender.sender_id) not in redrivers:
        return sender
    remembered = records.recall(body_key(body, hash_key))
    if remembered is None:
        raise RedriveUnattributed("a redriven message whose original sender is not known; not run")
    return remembered


def remember(
    body: str, sender: OriginalSender, now: datetime, records: IntakeRecords, hash_key: HashKey
) -> None:
    """Keep the original sender of a message that was not accepted, for as long as the DLQ keeps it."""
    records.remember(body_key(body, hash_key), sender, int((now + DLQ_RETENTION).timestamp()))
