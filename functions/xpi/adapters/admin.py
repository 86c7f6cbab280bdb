"""The admin path's writes: a new signed version of the policy or routing document (SSM, with its
watermark in the signing secret), and the requests DLQ redrive (SQS)."""

import json
from typing import Any

from xpi.adapters import aws
from xpi.adapters.config_store import parse_signing_secret
from xpi.domain.config_signing import ConfigKind, SignedConfig, sign, verify
from xpi.models.api import RedriveStarted, StoredConfig

STANDARD_TIER_MAX_BYTES = 4096  # larger values need the advanced tier (up to 8 KB)


class AwsAdminActions:
    def __init__(self, parameters: dict[ConfigKind, str], dlq_url: str, signing_secret_id: str) -> None:
        self._parameters, self._dlq_url, self._secret_id = parameters, dlq_url, signing_secret_id

    def store_config(
        self, kind: ConfigKind, document: dict[str, Any], *, changed_by: str, changed_at: str
    ) -> StoredConfig:
        """Sign `document` as the next revision, store it, then raise the watermark to it (in that order:
        a loader that sees the new watermark first re-reads the parameter before refusing anything)."""
        secrets = aws.secretsmanager()
        secret_text = secrets.get_secret_value(SecretId=self._secret_id)["SecretString"]
        state = parse_signing_secret(secret_text)
        name = self._parameters[kind]
        revision = max(state.watermark(kind), self._stored_revision(kind, name, state.key)) + 1
        envelope = sign(document, kind=kind, revision=revision, changed_by=changed_by, changed_at=changed_at,
                        key=state.key)  # fmt: skip
        text = envelope.model_dump_json()
        response = aws.ssm().put_parameter(
            Name=name,
            Value=text,
            Type="String",
            Overwrite=True,
            Tier="Advanced" if len(text.encode()) > STANDARD_TIER_MAX_BYTES else "Standard",
        )
        secret = json.loads(secret_text)
        secret["watermarks"] = {
            **secret.get("watermarks", {}),
            kind: {"revision": revision, "sha256": envelope.sha256},
        }
        secrets.put_secret_value(SecretId=self._secret_id, SecretString=json.dumps(secret))
        return StoredConfig(
            document=kind,
            revision=revision,
            sha256=envelope.sha256,
            parameter=name,
            parameter_version=int(response["Version"]),
        )

    def _stored_revision(self, kind: ConfigKind, name: str, key: bytes) -> int:
        """The revision of the signed value stored now (0: none, or one that does not verify)."""
        ssm = aws.ssm()
        try:
            raw = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            return 0
        envelope, verdict = verify(raw, kind=kind, key=key)
        return envelope.revision if isinstance(envelope, SignedConfig) and verdict == "ok" else 0

    def redrive(self) -> RedriveStarted:
        sqs = aws.sqs()
        attributes = sqs.get_queue_attributes(
            QueueUrl=self._dlq_url, AttributeNames=["QueueArn", "ApproximateNumberOfMessages"]
        )["Attributes"]
        # SQS's own message move task, without a DestinationArn: each message goes back to the queue it
        # was dead-lettered from, keeping its original sender and attributes (a copy made by hand would
        # be sent by the API's role, and lose them).
        task = sqs.start_message_move_task(SourceArn=attributes["QueueArn"])
        return RedriveStarted(
            task_handle=task["TaskHandle"], messages_to_move=int(attributes["ApproximateNumberOfMessages"])
        )
