"""``python -m xpi_tools.emulator`` / ``xpi emulator``: run the emulator in the foreground."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from xpi_tools.emulator.catalogue import SUPPORTED_REGIONS
from xpi_tools.emulator.config import AccessKey, ApiKey, EmulatorConfig, Latency, Quota
from xpi_tools.emulator.server import BedrockEmulator

KEYS_ENV = "XPI_EMULATOR_KEYS_FILE"


def _access_key(value: str) -> AccessKey:
    parts = value.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError("expected ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]")
    return AccessKey(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def _keys_file(path: str) -> tuple[list[AccessKey], list[ApiKey]]:
    data = json.loads(Path(path).read_text())
    access = [
        AccessKey(k["access_key_id"], k["secret_access_key"], k.get("session_token"), k.get("expires_at"))
        for k in data.get("access_keys", [])
    ]
    api = [
        ApiKey(k, "") if isinstance(k, str) else ApiKey(k["key"], k.get("name", ""), k.get("expires_at"))
        for k in data.get("api_keys", [])
    ]
    return access, api


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xpi emulator",
        description="Emulate commercial Amazon Bedrock (bedrock-runtime and bedrock) on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8600, help="0 picks a free port (default 8600)")
    parser.add_argument("--region", default="us-east-1", choices=SUPPORTED_REGIONS)
    parser.add_argument("--account-id", default="123456789012")
    parser.add_argument(
        "--access-key",
        action="append",
        default=[],
        type=_access_key,
        metavar="ID:SECRET[:TOKEN]",
        help="accept this access key for SigV4 (repeatable; prefer --keys-file, argv is visible to ps)",
    )
    parser.add_argument(
        "--api-key", action="append", default=[], metavar="KEY", help="accept this Bedrock API key"
    )
    parser.add_argument(
        "--keys-file",
        default=os.environ.get(KEYS_ENV),
        help=f'JSON {{"access_keys": [{{"access_key_id", "secret_access_key", "session_token"?}}], '
        f'"api_keys": ["KEY" | {{"key", "name"}}]}} (default: ${KEYS_ENV})',
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="default time to first token")
    parser.add_argument("--per-token-ms", type=float, default=0.0, help="default time per output token")
    parser.add_argument("--rpm", type=float, default=None, help="default requests-per-minute quota per model")
    parser.add_argument("--tpm", type=float, default=None, help="default tokens-per-minute quota per model")
    parser.add_argument("--access-log", action="store_true", help="log one line per request (no secrets)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    access_keys: list[AccessKey] = list(args.access_key)
    api_keys: list[ApiKey | str] = list(args.api_key)
    if args.keys_file:
        file_access, file_api = _keys_file(args.keys_file)
        access_keys += file_access
        api_keys += file_api
    try:
        config = EmulatorConfig(
            host=args.host,
            port=args.port,
            region=args.region,
            account_id=args.account_id,
            access_keys=access_keys,
            api_keys=api_keys,
            seed=args.seed,
            default_latency=Latency(args.ttft_ms, args.per_token_ms),
            default_quota=Quota(args.rpm, args.tpm),
            access_log=args.access_log,
        )
    except ValueError as error:
        print(f"xpi emulator: {error}", file=sys.stderr)
        return 2
    if not access_keys and not api_keys:
        print("xpi emulator: warning: no keys configured; every request will be refused", file=sys.stderr)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    emulator = BedrockEmulator(config)
    try:
        emulator.start()
        print(f"Bedrock emulator ({config.region}) listening on {emulator.url}", flush=True)
        while not stop.wait(0.5):
            pass
    except OSError as error:
        print(f"xpi emulator: {error}", file=sys.stderr)
        return 1
    finally:
        emulator.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("Bedrock emulator stopped", flush=True)
    return 0
