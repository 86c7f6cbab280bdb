"""Fixtures for the emulator contract tests: emulators on loopback, stock boto3 clients against them.

Every assertion in this suite is on what boto3 (or a raw HTTP exchange signed by botocore's own
SigV4 signer) returns, never on the emulator's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from xpi_tools.emulator import AccessKey, ApiKey, BedrockEmulator, EmulatorConfig, EmulatorControl

from .support import (
    API_KEY,
    API_KEY_NAME,
    KEY_ID,
    NO_RETRIES,
    REGION,
    SECRET,
    SESSION_KEY_ID,
    SESSION_SECRET,
    SESSION_TOKEN,
)

if TYPE_CHECKING:
    from mypy_boto3_bedrock import BedrockClient
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

ClientFactory = Callable[..., Any]


@pytest.fixture(scope="session")
def emulator() -> Iterator[BedrockEmulator]:
    config = EmulatorConfig(
        region=REGION,
        access_keys=[AccessKey(KEY_ID, SECRET), AccessKey(SESSION_KEY_ID, SESSION_SECRET, SESSION_TOKEN)],
        api_keys=[ApiKey(API_KEY, API_KEY_NAME)],
        seed=7,
    )
    with BedrockEmulator(config) as emu:
        yield emu


@pytest.fixture(scope="session")
def gov_emulator() -> Iterator[BedrockEmulator]:
    config = EmulatorConfig(region="us-gov-west-1", access_keys=[AccessKey(KEY_ID, SECRET)])
    with BedrockEmulator(config) as emu:
        yield emu


@pytest.fixture
def control(emulator: BedrockEmulator) -> Iterator[EmulatorControl]:
    """The control client, with faults, quotas, latency, clock and counters reset around the test."""
    emulator.control.reset()
    yield emulator.control
    emulator.control.reset()


@pytest.fixture(scope="session")
def make_client() -> ClientFactory:
    def make(
        service: str,
        url: str,
        *,
        key_id: str = KEY_ID,
        secret: str = SECRET,
        token: str | None = None,
        region: str = REGION,
        config: Config = NO_RETRIES,
    ) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=token,
            region_name=region,
        )
        return session.client(service, endpoint_url=url, config=config)  # type: ignore[call-overload]

    return make


@pytest.fixture(scope="session")
def runtime(emulator: BedrockEmulator, make_client: ClientFactory) -> BedrockRuntimeClient:
    client: BedrockRuntimeClient = make_client("bedrock-runtime", emulator.url)
    return client


@pytest.fixture(scope="session")
def bedrock(emulator: BedrockEmulator, make_client: ClientFactory) -> BedrockClient:
    client: BedrockClient = make_client("bedrock", emulator.url)
    return client
