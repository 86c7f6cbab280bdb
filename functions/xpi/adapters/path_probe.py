"""One health probe of an egress path: a fresh connection to its Bedrock endpoint (through its proxy, if
any), TLS verified, and one unsigned GET. Any HTTP answer (Bedrock answers an unsigned request with an
error) is a path that works: connection, TLS and a Bedrock front end answering. No credentials are sent."""

import time

import urllib3

from xpi.domain.egress import EgressPath

PROBE_TIMEOUT_S = 3.0


class HttpPathProbe:
    def __init__(self, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)

    def probe(self, path: EgressPath) -> float:
        # A new pool per probe: each probe measures a whole connection (TCP, TLS), as a cold call would.
        manager: urllib3.PoolManager = (
            urllib3.ProxyManager(path.https_proxy, timeout=self._timeout, retries=False)
            if path.https_proxy
            else urllib3.PoolManager(timeout=self._timeout, retries=False)
        )
        started = time.monotonic()
        try:
            manager.request("GET", path.endpoint.rstrip("/") + "/ping", preload_content=True)
        finally:
            manager.clear()
        return (time.monotonic() - started) * 1000
