"""Starting and stopping the emulator: the Python API and the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig

from .support import HAIKU, KEY_ID, SECRET, user

if TYPE_CHECKING:
    from .conftest import ClientFactory


def port_is_free(port: int) -> bool:
    """Nothing listens on the port and a new server can bind it (as servers do, with SO_REUSEADDR:
    connections the emulator closed may linger in TIME_WAIT)."""
    with socket.socket() as client:
        if client.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_start_picks_a_free_port_and_stop_frees_it(make_client: ClientFactory) -> None:
    emulator = BedrockEmulator(EmulatorConfig(port=0, access_keys=[AccessKey(KEY_ID, SECRET)]))

    emulator.start()
    port = emulator.port
    assert emulator.url == f"http://127.0.0.1:{port}"
    assert make_client("bedrock-runtime", emulator.url).converse(modelId=HAIKU, messages=user("hi"))
    assert not port_is_free(port)

    emulator.stop()

    assert not emulator.running
    assert port_is_free(port)


def test_stop_closes_keep_alive_connections_and_streams_in_flight(make_client: ClientFactory) -> None:
    emulator = BedrockEmulator(EmulatorConfig(access_keys=[AccessKey(KEY_ID, SECRET)])).start()
    client = make_client("bedrock-runtime", emulator.url)
    emulator.control.set_latency(time_to_first_token_ms=0, per_output_token_ms=50)
    stream = client.converse_stream(modelId=HAIKU, messages=user("[[emulator:output_tokens=200]]"))["stream"]
    next(iter(stream))

    started = time.perf_counter()
    emulator.stop()

    assert time.perf_counter() - started < 5
    assert port_is_free(int(urlsplit(emulator.url).port or 0))


def test_the_context_manager_starts_and_stops() -> None:
    with BedrockEmulator(EmulatorConfig(access_keys=[AccessKey(KEY_ID, SECRET)])) as emulator:
        assert emulator.running
        assert emulator.control.health()["status"] == "ok"

    assert not emulator.running


def test_outputs_depend_on_the_seed_and_nothing_else(make_client: ClientFactory) -> None:
    def answer(seed: int) -> str:
        config = EmulatorConfig(seed=seed, access_keys=[AccessKey(KEY_ID, SECRET)])
        with BedrockEmulator(config) as emulator:
            client = make_client("bedrock-runtime", emulator.url)
            response = client.converse(modelId=HAIKU, messages=user("hi"))
        return str(response["output"]["message"]["content"][0]["text"])

    assert answer(1) == answer(1)
    assert answer(1) != answer(2)


def test_an_unknown_region_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="unsupported region"):
        EmulatorConfig(region="eu-central-1")


def test_the_command_line_serves_until_interrupted(tmp_path: Path, make_client: ClientFactory) -> None:
    # GIVEN keys in a file, so that no secret is on the command line
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"access_keys": [{"access_key_id": KEY_ID, "secret_access_key": SECRET}]}))
    process = subprocess.Popen(
        [sys.executable, "-m", "xpi_tools.emulator", "--port", "0", "--keys-file", str(keys), "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")

        # WHEN it is used, then interrupted
        response = make_client("bedrock-runtime", url).converse(modelId=HAIKU, messages=user("hi"))
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)

        # THEN it answered, and stopped cleanly
        assert response["stopReason"] == "end_turn"
        assert process.returncode == 0
        assert "stopped" in out
        assert SECRET not in out + err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
