"""Fixtures for the xpi package: moto for GovCloud AWS, a fake commercial Bedrock, a Lambda context."""

from collections.abc import Iterator

import pytest
from moto import mock_aws
from xpi import dependencies

from tests.helpers.aws import XpiResources, create_xpi_resources
from tests.helpers.context import FakeLambdaContext
from tests.helpers.fakes import FakeBedrockGateway


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[XpiResources]:
    """xpi's resources in moto, and the functions' environment pointing at them."""
    with mock_aws():
        resources = create_xpi_resources()
        for name, value in resources.environment().items():
            monkeypatch.setenv(name, value)
        yield resources


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> FakeBedrockGateway:
    """Commercial Bedrock, faked behind the BedrockGateway Protocol the invoke step uses."""
    gateway = FakeBedrockGateway()
    monkeypatch.setattr(dependencies, "bedrock_gateway", lambda: gateway)
    return gateway
