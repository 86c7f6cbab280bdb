"""The lineage global table's replication between two local stacks (docs/local-stack.md, "Two regions").

moto has no global tables (no `AWS::DynamoDB::GlobalTable`, no replicas): each local stack keeps its own
lineage table, and this glue copies every item written in one to the other, as DynamoDB replicates a
global table's replicas: asynchronously (a round every `interval_s`), each item whole, the last writer
winning. Two regions never write one request's item in the same round, because each processes only the
request ids minted for it (xpi.domain.regions); if both changed an item anyway, the version of the region
the id was minted for wins (DynamoDB: the later write).

It reads each table with a Scan and writes with PutItem as the local operator: O(table) per round, fine
for the test's tables (a few thousand items), not a model of DynamoDB Streams. A region whose API is out
(its outage) is skipped until it answers; what was written meanwhile is copied then.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from xpi.domain.regions import minted_region


@dataclass
class Replica:
    region: str
    table: Any  # a boto3 DynamoDB client for the region's endpoint
    table_name: str
    seen: dict[str, str] = field(default_factory=dict)  # request id -> the item as last read here


def _items(replica: Replica) -> dict[str, tuple[str, dict[str, Any]]]:
    items: dict[str, tuple[str, dict[str, Any]]] = {}
    pages = replica.table.get_paginator("scan").paginate(TableName=replica.table_name, ConsistentRead=True)
    for page in pages:
        for item in page["Items"]:
            items[item["request_id"]["S"]] = (json.dumps(item, sort_keys=True), item)
    return items


def _unreachable(error: Exception) -> bool:
    """The region's API is out (its outage, or the connection refused): the round stops there."""
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500
    return True


class LineageReplication:
    """Copies lineage items both ways between two replicas, on its own thread until `stop()`."""

    def __init__(
        self, first: Replica, second: Replica, interval_s: float = 0.5, *, copy_existing: bool = True
    ) -> None:
        """copy_existing=False: what both tables hold at the first round is taken as replicated (a test
        that joins a stack already holding other tests' lineage replicates what is written after)."""
        self.replicas = (first, second)
        self._baseline = not copy_existing
        self.interval_s = interval_s
        self.copied = 0  # items written into a replica by the glue
        self.errors: list[str] = []  # the last rounds' failures (a region out of reach, an item refused)
        self.rounds = 0
        self.round_seconds: list[
            float
        ] = []  # each completed round's duration (its replication lag, with interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lineage-replication", daemon=True)

    def start(self) -> "LineageReplication":
        if self._baseline:  # noted before start() returns: whatever is written after it is replicated
            self.replicate_once()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.replicate_once()
            except Exception as error:  # a region out of reach: its round is skipped
                self._note(f"round: {error!r}")

    def _note(self, error: str) -> None:
        self.errors = [*self.errors[-9:], error]

    def replicate_once(self) -> int:
        """One round: what changed in either replica since its last round, written to the other."""
        first, second = self.replicas
        started = time.monotonic()
        now = {replica.region: _items(replica) for replica in self.replicas}
        written = 0
        if self._baseline:  # the first round only notes what each holds
            self._baseline = False
            for replica in self.replicas:
                replica.seen = {request_id: text for request_id, (text, _) in now[replica.region].items()}
            return 0
        for source, target in ((first, second), (second, first)):
            other = now[target.region]
            for request_id, (text, item) in now[source.region].items():
                if source.seen.get(request_id) == text or other.get(request_id, ("",))[0] == text:
                    continue  # unchanged here since the last round, or the same in both
                changed_there = request_id in other and target.seen.get(request_id) != other[request_id][0]
                if changed_there and minted_region(request_id) == target.region:
                    continue  # both changed it: the region the id belongs to wins
                try:
                    target.table.put_item(TableName=target.table_name, Item=item)
                except Exception as error:  # one refused item must not stop the others
                    if not _unreachable(error):
                        self._note(f"{request_id} -> {target.region}: {error!r}")
                        continue
                    raise
                other[request_id] = (text, item)
                written += 1
        for replica in self.replicas:
            replica.seen = {request_id: text for request_id, (text, _) in now[replica.region].items()}
        self.copied += written
        self.rounds += 1
        self.round_seconds = [*self.round_seconds[-999:], time.monotonic() - started]
        return written
