"""What one run of the lineage seal did."""

from pydantic import BaseModel


class SealedDay(BaseModel):
    day: str
    records: int
    newly_sealed: int
    last_hash: str | None


class SealReport(BaseModel):
    sealed: list[SealedDay] = []
    # The first day not sealed because a record of it is not final yet (it is sealed by a later run).
    waiting_on: str | None = None
