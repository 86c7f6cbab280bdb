"""Amazon Comprehend DetectPiiEntities as an extra PII detector for the classifier.

The classify step adds :class:`ComprehendPiiDetector` to ``classify_segments(..., extra_detectors=...)`` when
the policy's ``comprehend.enabled`` is true. Comprehend is available in the GovCloud regions, so the text
never leaves the partition for this call.

Each entity of a configured type scoring at least ``min_score`` becomes a detection; types that duplicate a
built-in category map onto it (``SSN`` -> ``pii.ssn``), the rest become ``pii.comprehend.<type>``
(``NAME`` -> ``pii.comprehend.name``). Errors from Comprehend propagate: the classify step then fails
closed rather than forwarding text that was not inspected as the policy requires.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from xpi.adapters import aws
from xpi.adapters.ports import ComprehendClient
from xpi.domain.classification import Detection, comprehend_category
from xpi.domain.policy import ComprehendSettings

# DetectPiiEntities accepts at most 100 KB of UTF-8 per call; 24,000 characters are at most 96,000 bytes.
MAX_CHUNK_CHARS = 24_000
# A chunk boundary is moved back to whitespace within this distance, so an entity is rarely cut in two.
_BOUNDARY_SEARCH = 200


def chunks(text: str, size: int = MAX_CHUNK_CHARS) -> Iterator[tuple[int, str]]:
    """(offset, chunk) pieces of ``text`` of at most ``size`` characters, cut at whitespace when possible."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = max(
                text.rfind(" ", end - _BOUNDARY_SEARCH, end), text.rfind("\n", end - _BOUNDARY_SEARCH, end)
            )
            if cut > start:
                end = cut + 1
        yield start, text[start:end]
        start = end


class ComprehendPiiDetector:
    """A classifier ``Detector`` backed by Comprehend DetectPiiEntities."""

    def __init__(self, settings: ComprehendSettings, client: ComprehendClient | None = None) -> None:
        self._settings = settings
        self._types = frozenset(settings.entity_types)
        self._client = client

    @property
    def name(self) -> str:
        return "comprehend"

    def _comprehend(self) -> ComprehendClient:
        if self._client is None:  # the shared client, created on first use (never at construction)
            self._client = aws.comprehend()
        return self._client

    def detect(self, text: str) -> list[Detection]:
        found: list[Detection] = []
        for offset, chunk in chunks(text):
            if not chunk.strip():
                continue
            response = self._comprehend().detect_pii_entities(
                Text=chunk, LanguageCode=self._settings.language_code
            )
            found.extend(self._detections(response.get("Entities"), offset, len(chunk)))
        return found

    def _detections(self, entities: object, offset: int, length: int) -> Iterator[Detection]:
        if not isinstance(entities, Sequence):
            return
        for entity in entities:
            if not isinstance(entity, Mapping):
                continue
            kind, score = entity.get("Type"), entity.get("Score")
            begin, end = entity.get("BeginOffset"), entity.get("EndOffset")
            if (
                kind not in self._types
                or not isinstance(score, int | float)
                or score < self._settings.min_score
            ):
                continue
            if not isinstance(begin, int) or not isinstance(end, int) or not 0 <= begin < end <= length:
                continue  # an offset outside the chunk cannot be placed; never guess a span
            yield Detection(comprehend_category(str(kind)), offset + begin, offset + end)
