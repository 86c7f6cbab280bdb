"""The stack's hash key: a Secrets Manager secret the stack generates (GenerateSecretString), read
through Powertools Parameters with caching, only by the roles that hash content (Validate, Classify,
InvokeModel). Its value never leaves this module."""

from aws_lambda_powertools.utilities import parameters

from xpi.adapters import aws
from xpi.domain.errors import HashKeyUnavailable


class SecretsManagerHashKey:
    def __init__(self, secret_id: str, max_age_s: int) -> None:
        self._secret_id = secret_id
        self._max_age_s = max_age_s
        self._provider = parameters.SecretsProvider(boto3_client=aws.secretsmanager())

    def get(self) -> bytes:
        try:
            value = self._provider.get(self._secret_id, max_age=self._max_age_s)
        except Exception as exc:  # Powertools wraps SDK errors in GetParameterError
            raise HashKeyUnavailable(f"cannot read the hash key secret: {type(exc).__name__}") from None
        key = str(value).encode("utf-8")
        if len(key) < 32:
            raise HashKeyUnavailable("the hash key secret is shorter than 32 characters")
        return key
