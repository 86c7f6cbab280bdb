"""Roles Anywhere credentials (xpi.adapters.roles_anywhere) against the emulator's CreateSession on
loopback, the certificate in moto's Secrets Manager: no long-lived key anywhere."""

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from xpi.adapters.roles_anywhere import RolesAnywhereCredentials
from xpi.domain.errors import CredentialsRejected
from xpi.models.credentials import IamKeys
from xpi_tools.certificates import Issued, issue, make_ca
from xpi_tools.emulator import BedrockEmulator, EmulatorConfig, RolesAnywhere

ANCHOR = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta-1"
PROFILE = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/p-1"
ROLE = "arn:aws:iam::123456789012:role/xpi-bedrock-invoke"
CA = make_ca()


@pytest.fixture
def emulator() -> Iterator[BedrockEmulator]:
    config = EmulatorConfig(roles_anywhere=RolesAnywhere(ANCHOR, CA.certificate_pem, PROFILE, ROLE))
    with BedrockEmulator(config) as emu:
        yield emu


def source(emu: BedrockEmulator, certificate: Issued, **options: int) -> RolesAnywhereCredentials:
    secret = json.dumps(
        {
            "certificate": certificate.certificate_pem.decode(),
            "private_key": certificate.private_key_pem.decode(),
        }
    )
    arn = boto3.client("secretsmanager").create_secret(Name="ra-cert", SecretString=secret)["ARN"]
    return RolesAnywhereCredentials(
        certificate_secret_id=arn, trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE,
        region="us-east-1", endpoint=emu.url, **options,
    )  # fmt: skip


def sessions(emu: BedrockEmulator) -> int:
    return int(emu.control.counters().operations.get("CreateSession", 0))


@mock_aws
def test_a_trusted_certificate_gets_temporary_credentials_that_bedrock_accepts(
    emulator: BedrockEmulator,
) -> None:
    credentials = source(emulator, issue(CA))
    # WHEN the invoke step asks twice
    first = credentials.get()
    again = credentials.get()
    # THEN one session was created, and its temporary key (with a session token) signs Bedrock calls
    assert again == first and sessions(emulator) == 1
    keys = first.secret
    assert isinstance(keys, IamKeys) and keys.aws_session_token is not None
    assert keys.aws_access_key_id.startswith("ASIA")
    runtime = boto3.client(
        "bedrock-runtime", endpoint_url=emulator.url, region_name="us-east-1",
        aws_access_key_id=keys.aws_access_key_id,
        aws_secret_access_key=keys.aws_secret_access_key.get_secret_value(),
        aws_session_token=keys.aws_session_token.get_secret_value(),
    )  # fmt: skip
    runtime.converse(
        modelId="anthropic.claude-3-haiku-20240307-v1:0",
        messages=[{"role": "user", "content": [{"text": "hi"}]}],
    )
    # AND a refresh (Bedrock refused the cached credentials) creates a new session
    assert credentials.get(refresh=True) != first and sessions(emulator) == 2


@mock_aws
def test_credentials_are_renewed_shortly_before_they_expire(emulator: BedrockEmulator) -> None:
    credentials = source(emulator, issue(CA), refresh_before_expiry_s=3601)
    credentials.get()
    credentials.get()
    assert sessions(emulator) == 2


@pytest.mark.parametrize("ca_name", ["someone else's CA", "xpi local trust anchor"])  # the anchor's own name
@mock_aws
def test_a_certificate_of_another_ca_is_refused(emulator: BedrockEmulator, ca_name: str) -> None:
    with pytest.raises(CredentialsRejected):
        source(emulator, issue(make_ca(ca_name))).get()


@mock_aws
def test_a_signature_by_another_key_is_refused(emulator: BedrockEmulator) -> None:
    trusted, other = issue(CA), issue(CA)
    forged = Issued(trusted.certificate_pem, other.private_key_pem)
    with pytest.raises(CredentialsRejected):
        source(emulator, forged).get()
