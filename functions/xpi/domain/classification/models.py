"""The classifier's boundary types: what goes in (segments), what comes out (an assessment)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

SegmentKind = Literal["text", "image", "document", "binary", "tool_input"]
Decision = Literal["allow", "redact", "block"]


class Segment(BaseModel):
    """One piece of a request to inspect.

    ``location`` names where it sits in the request (``system[0]``, ``messages[1].content[0].text``) so a
    finding can point at it without repeating its content. ``text`` is None for content that has no
    inspectable text (an image, a binary document); such a segment is reported as uninspectable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    location: str = Field(min_length=1, max_length=512)
    text: str | None = None
    kind: SegmentKind = "text"


class Finding(BaseModel):
    """One detected span. It carries the category and the span, never the matched characters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str
    location: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    action: Decision


class Assessment(BaseModel):
    """The classifier's verdict on a whole request.

    ``redacted`` maps a segment location to its redacted text; it is filled only when the decision is
    ``redact`` (a blocked request crosses nothing, so no redacted copy of it is produced).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: Decision
    findings: list[Finding] = Field(default_factory=list)
    redacted: dict[str, str] = Field(default_factory=dict)
    categories: dict[str, int] = Field(default_factory=dict)
    security_alert: bool = False
    reasons: list[str] = Field(default_factory=list)


class Detection(NamedTuple):
    """A raw detector hit: category and character span in the text the detector was given."""

    category: str
    start: int
    end: int


@runtime_checkable
class Detector(Protocol):
    """An additional detector the engine runs over every inspectable text (Amazon Comprehend, for one).

    ``detect`` returns spans relative to ``text``. It may raise; the engine lets the error propagate so
    the caller fails closed instead of sending uninspected text.
    """

    @property
    def name(self) -> str: ...

    def detect(self, text: str) -> Iterable[Detection]: ...
