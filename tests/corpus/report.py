"""Evaluate the classifier on the labelled corpus and print per-category precision and recall.

    python tests/corpus/report.py                 # the table, through `xpi classify --jsonl`
    python tests/corpus/report.py --jsonl OUT     # also write the corpus as JSONL for `xpi classify --jsonl`

Corpus files (``*.txt`` beside this script) hold records; each starts with a header line

    === id=<id> decision=<allow|redact|block> categories=<a,b,...> [near_miss=yes]

and the record's text is every line up to the next header. Categories are the set the classifier should
report for the document (document level, not span level). ``near_miss=yes`` marks an allow case written to
look like a positive ("the secret ingredient", an invalid SSN-shaped number). ``normalized=yes`` marks a
document whose evasion is Unicode spelling (zero-width characters, Cyrillic or fullwidth letters, Unicode
hyphens and spaces): the detectors see it right only once the engine normalizes text before detection, so
until ``xpi.domain.classification.normalize`` exists such documents are reported in their own section and
left out of the targets (``Document.expected_to_pass``).

Each file is a section (``adversarial.txt``: markings and identifiers in tables, CSV cells, log lines, JSON
strings, mixed case); the report gives block recall and false blocks per section.

The evaluation runs the corpus through ``xpi classify --jsonl`` in-process, exactly as an operator would.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from xpi_tools import classify_cli

CORPUS_DIR = Path(__file__).resolve().parent
_HEADER = "=== "


def normalization_available() -> bool:
    """True once the engine normalizes Unicode (NFKC, format characters, confusables) before detection."""
    return importlib.util.find_spec("xpi.domain.classification.normalize") is not None


@dataclass(frozen=True)
class Document:
    id: str
    decision: str
    categories: frozenset[str]
    near_miss: bool
    text: str
    source: str
    normalized: bool = False

    @property
    def section(self) -> str:
        stem = self.source.removesuffix(".txt")
        return f"{stem} (unicode)" if self.normalized else stem

    @property
    def expected_to_pass(self) -> bool:
        return not self.normalized or normalization_available()


@dataclass
class Evaluation:
    documents: list[Document]
    decisions: dict[str, str] = field(default_factory=dict)  # id -> decision
    categories: dict[str, frozenset[str]] = field(default_factory=dict)  # id -> categories

    def wrong_decisions(self) -> list[Document]:
        return [d for d in self.documents if self.decisions[d.id] != d.decision]

    def wrong_categories(self) -> list[Document]:
        return [d for d in self.documents if self.categories[d.id] != d.categories]


def _parse_header(line: str, source: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for token in line[len(_HEADER) :].split():
        key, sep, value = token.partition("=")
        if not sep:
            raise ValueError(f"{source}: bad header token {token!r} in {line!r}")
        fields[key] = value
    missing = {"id", "decision", "categories"} - fields.keys()
    if missing:
        raise ValueError(f"{source}: header {line!r} lacks {sorted(missing)}")
    if fields["decision"] not in ("allow", "redact", "block"):
        raise ValueError(f"{source}: bad decision in {line!r}")
    return fields


def load_corpus(directory: Path = CORPUS_DIR) -> list[Document]:
    documents: list[Document] = []
    for path in sorted(directory.glob("*.txt")):
        header: dict[str, str] | None = None
        lines: list[str] = []

        def flush(header: dict[str, str] | None, lines: list[str], source: str) -> None:
            if header is None:
                return
            categories = frozenset(c for c in header["categories"].split(",") if c)
            documents.append(
                Document(
                    header["id"],
                    header["decision"],
                    categories,
                    header.get("near_miss") == "yes",
                    "\n".join(lines).strip("\n"),
                    source,
                    header.get("normalized") == "yes",
                )
            )

        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith(_HEADER):
                flush(header, lines, path.name)
                header, lines = _parse_header(line, path.name), []
            elif header is None:
                if line.strip():
                    raise ValueError(f"{path.name}: text before the first header")
            else:
                lines.append(line)
        flush(header, lines, path.name)
    ids = [d.id for d in documents]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate corpus ids: {duplicates}")
    return documents


def to_jsonl(documents: list[Document]) -> str:
    return "".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in documents)


def evaluate(documents: list[Document], argv: tuple[str, ...] = ()) -> Evaluation:
    """Classify every document through ``xpi classify --jsonl`` (in-process)."""
    stdin, out = io.TextIOWrapper(io.BytesIO(to_jsonl(documents).encode("utf-8"))), io.StringIO()
    old_stdin = sys.stdin
    try:
        sys.stdin = stdin
        with contextlib.redirect_stdout(out):
            status = classify_cli.main([*argv, "--jsonl", "-"])
    finally:
        sys.stdin = old_stdin
    if status != 0:
        raise RuntimeError(f"xpi classify exited {status}:\n{out.getvalue()}")
    evaluation = Evaluation(documents)
    for line in out.getvalue().splitlines():
        result = json.loads(line)
        evaluation.decisions[result["id"]] = result["decision"]
        evaluation.categories[result["id"]] = frozenset(f["category"] for f in result["findings"])
    return evaluation


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.3f}" if den else "  -  "


def format_report(evaluation: Evaluation) -> str:
    docs = evaluation.documents
    all_categories = sorted(
        {c for d in docs for c in d.categories} | {c for v in evaluation.categories.values() for c in v}
    )
    lines = [
        f"corpus: {len(docs)} documents ({', '.join(f'{k}: {v}' for k, v in _count_by_decision(docs))}); "
        f"near-miss allow cases: {sum(d.near_miss for d in docs)}",
        "",
    ]
    lines.append(
        f"{'category':32s} {'support':>7s} {'TP':>4s} {'FP':>4s} {'FN':>4s} {'precision':>9s} {'recall':>7s}"
    )
    for category in all_categories:
        tp = sum(1 for d in docs if category in d.categories and category in evaluation.categories[d.id])
        fp = sum(1 for d in docs if category not in d.categories and category in evaluation.categories[d.id])
        fn = sum(1 for d in docs if category in d.categories and category not in evaluation.categories[d.id])
        lines.append(
            f"{category:32s} {tp + fn:7d} {tp:4d} {fp:4d} {fn:4d} {_ratio(tp, tp + fp):>9s} "
            f"{_ratio(tp, tp + fn):>7s}"
        )
    lines.append("")
    lines.extend(_section_rows(evaluation))
    lines.append("")
    lines.append("decisions (rows: expected, columns: got)")
    lines.append(f"{'':8s} {'allow':>6s} {'redact':>6s} {'block':>6s}")
    for expected in ("allow", "redact", "block"):
        row = [d for d in docs if d.decision == expected]
        counts = [
            sum(1 for d in row if evaluation.decisions[d.id] == got) for got in ("allow", "redact", "block")
        ]
        lines.append(f"{expected:8s} {counts[0]:6d} {counts[1]:6d} {counts[2]:6d}")
    allow = [d for d in docs if d.decision == "allow"]
    allow_fp = [d for d in allow if evaluation.decisions[d.id] != "allow"]
    near = [d for d in allow if d.near_miss]
    near_fp = [d for d in near if evaluation.decisions[d.id] != "allow"]
    blocks = [d for d in docs if d.decision == "block"]
    blocked = [d for d in blocks if evaluation.decisions[d.id] == "block"]
    lines.append("")
    lines.append(f"block cases blocked: {len(blocked)}/{len(blocks)}")
    lines.append(
        f"allow-case false positives: {len(allow_fp)}/{len(allow)} "
        f"({100 * len(allow_fp) / len(allow):.1f} %), "
        f"near-miss false positives: {len(near_fp)}/{len(near)}"
    )
    for doc in evaluation.wrong_decisions() + [
        d for d in evaluation.wrong_categories() if d not in evaluation.wrong_decisions()
    ]:
        got = ",".join(sorted(evaluation.categories[doc.id])) or "-"
        want = ",".join(sorted(doc.categories)) or "-"
        got_decision = evaluation.decisions[doc.id]
        lines.append(f"  mismatch {doc.id}: expected {doc.decision} [{want}], got {got_decision} [{got}]")
    return "\n".join(lines)


def _section_rows(evaluation: Evaluation) -> list[str]:
    """Block recall and false blocks per corpus file (section)."""
    rows = [
        f"{'section':28s} {'docs':>5s} {'block':>6s} {'blocked':>7s} {'recall':>7s} {'allow':>6s} "
        f"{'false blocks':>12s}"
    ]
    sections: dict[str, list[Document]] = {}
    for doc in evaluation.documents:
        sections.setdefault(doc.section, []).append(doc)
    for name in sorted(sections):
        docs = sections[name]
        blocks = [d for d in docs if d.decision == "block"]
        blocked = sum(1 for d in blocks if evaluation.decisions[d.id] == "block")
        allow = [d for d in docs if d.decision == "allow"]
        false_blocks = sum(1 for d in allow if evaluation.decisions[d.id] == "block")
        pending = "" if all(d.expected_to_pass for d in docs) else "  (pending normalization)"
        rows.append(
            f"{name:28s} {len(docs):5d} {len(blocks):6d} {blocked:7d} {_ratio(blocked, len(blocks)):>7s} "
            f"{len(allow):6d} {false_blocks:5d} ({_ratio(false_blocks, len(allow))}){pending}"
        )
    return rows


def _count_by_decision(docs: list[Document]) -> list[tuple[str, int]]:
    return [(k, sum(1 for d in docs if d.decision == k)) for k in ("allow", "redact", "block")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jsonl", type=Path, help="also write the corpus as JSONL to this file")
    args = parser.parse_args(argv)
    documents = load_corpus()
    if args.jsonl:
        args.jsonl.write_text(to_jsonl(documents), encoding="utf-8")
    print(format_report(evaluate(documents)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
