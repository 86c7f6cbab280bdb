"""``BedrockEmulator``: the emulator on a background event-loop thread, for tests and the local stack."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
from types import TracebackType

from xpi_tools.emulator.client import EmulatorControl
from xpi_tools.emulator.config import EmulatorConfig
from xpi_tools.emulator.httpserver import HttpServer
from xpi_tools.emulator.service import BedrockService

logger = logging.getLogger("xpi_tools.emulator")


class BedrockEmulator:
    """Commercial Amazon Bedrock (runtime and control plane) on one loopback port.

    >>> with BedrockEmulator(EmulatorConfig(access_keys=[AccessKey("AKIA...", "secret")])) as emu:
    ...     boto3.client("bedrock-runtime", endpoint_url=emu.url, region_name="us-east-1", ...)
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.service = BedrockService(self.config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: HttpServer | None = None
        self._port: int | None = None
        self._control: EmulatorControl | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def url(self) -> str:
        host = self.config.host
        if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard bind is reached through loopback
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def control(self) -> EmulatorControl:
        if self._control is None:
            self._control = EmulatorControl(self.url)
        return self._control

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> BedrockEmulator:
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.create_server((self.config.host, self.config.port), family=family, backlog=1024)
        sock.setblocking(False)
        self._port = int(sock.getsockname()[1])
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            http = HttpServer(loop, self.service.handle)
            self._http = http
            try:
                loop.run_until_complete(http.start(sock))
            except BaseException as error:  # surfaced to start()'s caller
                failure.append(error)
                ready.set()
                loop.close()
                sock.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(http.close())
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"bedrock-emulator-{self._port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError("the emulator failed to start") from failure[0]
        logger.info(
            "Bedrock emulator listening on %s (region %s, %d access keys, %d API keys)",
            self.url,
            self.config.region,
            len(self.service.state.keys.access_keys),
            len(self.service.state.keys.api_keys),
        )
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None
        self._http = None

    def __enter__(self) -> BedrockEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
