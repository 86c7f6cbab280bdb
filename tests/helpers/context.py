"""A Lambda context in the shape Powertools' LambdaContext exposes (what handlers are typed against)."""

import uuid

from aws_lambda_powertools.utilities.typing import LambdaContext


class FakeLambdaContext(LambdaContext):
    def __init__(self, function_name: str = "xpi-prod-Function", remaining_ms: int = 120_000) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = (
            f"arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:{function_name}"
        )
        self._memory_limit_in_mb = 256
        self._aws_request_id = str(uuid.uuid4())
        self._log_group_name = "/xpi/xpi-prod/functions"
        self._log_stream_name = "2025/03/12/[$LATEST]0123456789abcdef0123456789abcdef"
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return self._remaining_ms
