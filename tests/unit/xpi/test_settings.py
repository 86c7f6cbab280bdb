"""xpi.settings is the one reader of the environment: a field for every variable template.yaml sets for
any function, and defaults that agree with the values the template sets."""

import re

import pytest
from xpi.settings import BATCH_FALLBACK_CONCURRENCY, SettingMissingError, Settings, get_settings

from tests.helpers.events import REPO

ALIASES = {field.alias: name for name, field in Settings.model_fields.items() if field.alias}


def template_variables() -> dict[str, set[str]]:
    """Every environment variable template.yaml sets (Globals and per function) -> the values it sets."""
    variables: dict[str, set[str]] = {}
    indent = None
    for line in (REPO / "template.yaml").read_text(encoding="utf-8").splitlines():
        if line.strip() == "Variables:":
            indent = len(line) - len(line.lstrip())
            continue
        if indent is None or not line.strip() or line.strip().startswith("#"):
            continue
        if len(line) - len(line.lstrip()) <= indent:
            indent = None
            continue
        if match := re.fullmatch(r"\s+([A-Z][A-Z0-9_]*): (.+?)\s*(#.*)?", line):
            variables.setdefault(match.group(1), set()).add(match.group(2).strip('"'))
    return variables


def test_the_template_is_read() -> None:
    variables = template_variables()

    assert {"LINEAGE_TABLE", "BEDROCK_TIMEOUT_S", "API_INVOKE_WAIT_S", "BATCH_MAX_LINES"} <= set(variables)
    assert variables["BEDROCK_TIMEOUT_S"] == {"120"}


@pytest.mark.parametrize("variable", sorted(template_variables()))
def test_every_variable_the_template_sets_is_a_setting(variable: str) -> None:
    assert variable in ALIASES, f"template.yaml sets {variable}; xpi.settings.Settings has no field for it"


@pytest.mark.parametrize(
    ("variable", "value"),
    sorted(
        (variable, value)
        for variable, values in template_variables().items()
        for value in values
        # Intrinsics are the deployment's own; Powertools reads its variables itself.
        if not value.startswith("!") and not variable.startswith("POWERTOOLS_")
    ),
)
def test_the_defaults_are_what_the_template_sets(variable: str, value: str) -> None:
    name = ALIASES[variable]

    assert getattr(Settings(), name) == getattr(Settings.model_validate({variable: value}), name)


def test_settings_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN settings read at a cold start
    monkeypatch.setenv("LINEAGE_TABLE", "xpi-a-LineageTable")
    first = get_settings()

    # WHEN the environment changes afterwards
    monkeypatch.setenv("LINEAGE_TABLE", "xpi-b-LineageTable")

    # THEN a warm invocation keeps what was read
    assert get_settings() is first and first.lineage_table == "xpi-a-LineageTable"


def test_batch_concurrency_is_parsed_from_its_json() -> None:
    settings = Settings.model_validate({"BATCH_MODEL_CONCURRENCY": '{"fast": 8, "*": "2"}'})

    assert settings.batch_concurrency == {"fast": 8, "*": 2}
    assert Settings().batch_concurrency == {"*": BATCH_FALLBACK_CONCURRENCY}


def test_auditor_principals_are_comma_separated_arns() -> None:
    settings = Settings.model_validate({"API_AUDITOR_PRINCIPALS": " arn:a/role , ,arn:b/jane"})

    assert settings.auditors == ("arn:a/role", "arn:b/jane")


def test_a_required_setting_names_its_variable() -> None:
    with pytest.raises(SettingMissingError, match="BATCH_STATE_MACHINE_ARN is not set"):
        Settings().require("batch_state_machine_arn")


# ------------------------------------------------------------------ the Bedrock endpoint override
LOOPBACK_HTTP = [
    "http://127.0.0.1:18600",
    "http://127.0.0.1",
    "http://127.8.9.10:80/path",
    "http://localhost:18600",
    "http://[::1]:18600",
]
HTTPS = [
    "https://bedrock-runtime.us-east-1.amazonaws.com",
    "https://vpce-0a1b.bedrock-runtime.example:8443/x",
]
REFUSED = [
    "http://bedrock-runtime.us-east-1.amazonaws.com",  # a Bedrock API key would cross in clear
    "http://10.0.0.5:8080",
    "http://127.0.0.1.evil.example",
    "http://localhost.evil.example",
    "http://[::2]",
    "ftp://127.0.0.1",
    "bedrock-runtime.us-east-1.amazonaws.com",
    "https://",
]


def endpoint_pattern() -> str:
    """The AllowedPattern of the CommercialBedrockEndpoint parameter in template.yaml."""
    text = (REPO / "template.yaml").read_text(encoding="utf-8")
    block = text.split("\n  CommercialBedrockEndpoint:\n", 1)[1].split("\n  LogLevel:", 1)[0]
    match = re.search(r"^    AllowedPattern: '(.+)'$", block, re.MULTILINE)
    assert match is not None, "CommercialBedrockEndpoint has no AllowedPattern"
    return match.group(1).replace("''", "'")


@pytest.mark.parametrize("url", ["", *HTTPS, *LOOPBACK_HTTP])
def test_an_https_or_loopback_endpoint_override_is_accepted(url: str) -> None:
    assert Settings.model_validate({"COMMERCIAL_BEDROCK_ENDPOINT": url}).commercial_bedrock_endpoint == url
    assert re.fullmatch(endpoint_pattern(), url)


@pytest.mark.parametrize("url", REFUSED)
def test_a_plain_http_endpoint_override_to_another_host_is_refused(url: str) -> None:
    # settings refuse it (the function fails before any credential is read)
    with pytest.raises(ValueError, match="must be https"):
        Settings.model_validate({"COMMERCIAL_BEDROCK_ENDPOINT": url})
    # and CloudFormation refuses the parameter value at deploy time
    assert not re.fullmatch(endpoint_pattern(), url)
