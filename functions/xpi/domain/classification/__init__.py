"""Data classification at the partition boundary: markings, CUI, export control and PII.

Pure Python (no boto3, no environment). The classify step builds :class:`Segment` objects for every text
a request carries and calls :func:`classify_segments` with the policy in force and the target model id.
"""

from .categories import CATEGORIES, comprehend_category, placeholder
from .engine import classify_segments, detect, redact
from .models import Assessment, Decision, Detection, Detector, Finding, Segment, SegmentKind

__all__ = [
    "CATEGORIES",
    "Assessment",
    "Decision",
    "Detection",
    "Detector",
    "Finding",
    "Segment",
    "SegmentKind",
    "classify_segments",
    "comprehend_category",
    "detect",
    "placeholder",
    "redact",
]
