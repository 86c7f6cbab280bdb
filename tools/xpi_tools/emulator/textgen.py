"""Deterministic model outputs and the emulator's tokenizer.

Tokenizer: ``ceil(len(text) / 4)`` per text segment (Unicode code points), the common "about four
characters per token" rule. Input tokens are the sum over every text segment of the request
(system prompts, message texts, tool specifications and JSON tool inputs/results) plus flat charges
for media: 1,600 tokens per image, video or audio block; documents count as their text. CountTokens
and the usage of an invocation use the same function, so they always agree.

Outputs are words drawn from a fixed vocabulary by a SHA-256 chain seeded with the emulator seed,
the model and the prompt: the same request to the same model always answers the same text.

Directives, read from the last user message only (they count as input tokens like any text):
    ``[[emulator:output_chars=N]]``   answer exactly N characters (before maxTokens / stop sequences)
    ``[[emulator:output_tokens=N]]``  answer exactly 4*N characters, i.e. N tokens
    ``[[emulator:reply=TEXT]]``       answer TEXT verbatim (TEXT cannot contain ``]]``)
    ``[[emulator:echo]]``             answer the last user message with its directives removed
    ``[[emulator:tag=NAME]]``         count this call under NAME too (the answer is unchanged)
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Final, Literal

from xpi_tools.emulator.errors import validation

CHARS_PER_TOKEN: Final = 4
MEDIA_BLOCK_TOKENS: Final = 1600
MAX_OUTPUT_CHARS: Final = 16 * 1024 * 1024

StopReason = Literal["end_turn", "max_tokens", "stop_sequence"]

_DIRECTIVE = re.compile(r"\[\[emulator:([a-z_]+)(?:=(.*?))?\]\]", re.DOTALL)

_VOCABULARY = """
the model answers every request with careful deterministic text so tests can rely on it boundary
partition region quota token stream signal latency payload secret rotation lineage policy
routing classification budget metric trace event record batch window retry backoff throughput
capacity profile inference foundation endpoint runtime control counter bucket minute second hour
value result summary context prompt system assistant user message content block delta stop
reason usage input output total cache read write vector embedding dimension alpha bravo charlie
delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo
sierra tango uniform victor whiskey xray yankee zulu north south east west green blue amber red
silver golden quiet rapid steady bright clear simple robust modest exact data flow path node
edge graph queue table index shard replica leader follower commit apply plan build test ship run
check verify measure compare report review approve deploy observe river mountain valley forest
meadow harbor island canyon desert glacier prairie lagoon summit copper iron nickel cobalt
carbon silicon helium neon argon xenon radon oxygen hydrogen nitrogen first second third fourth
fifth sixth seventh eighth ninth tenth many few several each every always often sometimes rarely
never early late soon later now today tomorrow yesterday
"""
_WORDS: Final = tuple(_VOCABULARY.split())


def count_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@dataclass
class Prompt:
    """What the model is asked: the text segments that cost tokens, and media charges."""

    segments: list[str] = field(default_factory=list)
    media_blocks: int = 0
    last_user_text: str = ""
    # Converse cache points: (fingerprint of the prefix before the point, its input tokens), in order.
    cache_points: list[tuple[str, int]] = field(default_factory=list)

    def add(self, text: str) -> None:
        if text:
            self.segments.append(text)

    def mark_cache_point(self) -> None:
        """A `cachePoint` block: the prefix so far may be read from or written to the prompt cache."""
        h = hashlib.sha256(f"{self.media_blocks}".encode())
        for segment in self.segments:
            h.update(b"\x1e")
            h.update(segment.encode("utf-8", "surrogatepass"))
        self.cache_points.append((h.hexdigest(), self.input_tokens))

    @property
    def input_tokens(self) -> int:
        return max(1, sum(count_tokens(s) for s in self.segments) + self.media_blocks * MEDIA_BLOCK_TOKENS)

    def fingerprint(self, seed: int, model_id: str) -> bytes:
        h = hashlib.sha256(f"{seed}\x1f{model_id}\x1f{self.media_blocks}".encode())
        for segment in self.segments:
            h.update(b"\x1e")
            h.update(segment.encode("utf-8", "surrogatepass"))
        return h.digest()


@dataclass(frozen=True)
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: StopReason
    stop_sequence: str | None = None
    # Bedrock prompt caching: of the prompt's tokens, those read from / written to the cache (not in
    # input_tokens, which are the uncached ones, as Bedrock reports them).
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


@dataclass(frozen=True)
class Directives:
    output_chars: int | None = None
    reply: str | None = None
    echo: bool = False
    tag: str | None = None


def parse_directives(text: str) -> Directives:
    output_chars: int | None = None
    reply: str | None = None
    echo = False
    tag: str | None = None
    for match in _DIRECTIVE.finditer(text):
        name, value = match.group(1), match.group(2)
        if name in ("output_chars", "output_tokens"):
            try:
                amount = int(value or "")
            except ValueError:
                raise validation(f"Emulator directive {name} needs an integer, got {value!r}.") from None
            chars = amount * CHARS_PER_TOKEN if name == "output_tokens" else amount
            if not 0 <= chars <= MAX_OUTPUT_CHARS:
                raise validation(
                    f"Emulator directive {name} must be between 0 and {MAX_OUTPUT_CHARS} characters."
                )
            output_chars = chars
        elif name == "reply":
            reply = value or ""
        elif name == "echo":
            echo = True
        elif name == "tag":
            tag = value or None
        else:
            raise validation(f"Unknown emulator directive {name!r}.")
    return Directives(output_chars=output_chars, reply=reply, echo=echo, tag=tag)


def strip_directives(text: str) -> str:
    return _DIRECTIVE.sub("", text).strip()


def _words(digest: bytes) -> str:
    """One word per byte of the digest, in sentences of ten words."""
    parts: list[str] = []
    for count, byte in enumerate(digest, start=1):
        word = _WORDS[byte % len(_WORDS)]
        parts.append(word.capitalize() if count % 10 == 1 else word)
        if count % 10 == 0:
            parts[-1] += "."
    return " ".join(parts)


def deterministic_text(fingerprint: bytes, chars: int) -> str:
    """At least ``chars`` characters of words derived from ``fingerprint`` (not cut)."""
    pieces: list[str] = []
    length = 0
    digest = fingerprint
    while length < chars:
        digest = hashlib.sha256(digest).digest()
        piece = _words(digest)
        pieces.append(piece)
        length += len(piece) + 1
    return " ".join(pieces)


def generate(
    prompt: Prompt,
    *,
    seed: int,
    model_id: str,
    max_tokens: int | None,
    stop_sequences: list[str] | tuple[str, ...] = (),
) -> Generation:
    directives = parse_directives(prompt.last_user_text)
    fingerprint = prompt.fingerprint(seed, model_id)
    if directives.reply is not None:
        text = directives.reply
    elif directives.echo:
        text = strip_directives(prompt.last_user_text)
    elif directives.output_chars is not None:
        text = deterministic_text(fingerprint, directives.output_chars)[: directives.output_chars]
    else:
        natural_tokens = 12 + fingerprint[0] % 48
        text = deterministic_text(fingerprint, natural_tokens * CHARS_PER_TOKEN).rstrip(".") + "."

    limit_chars = len(text) if max_tokens is None else min(len(text), max_tokens * CHARS_PER_TOKEN)
    stop_at: int | None = None
    matched: str | None = None
    for sequence in stop_sequences:
        if not sequence:
            continue
        # The whole sequence must fit in the token budget for the model to have produced it.
        at = text.find(sequence)
        if at != -1 and at + len(sequence) <= limit_chars and (stop_at is None or at < stop_at):
            stop_at, matched = at, sequence
    reason: StopReason
    if stop_at is not None:
        text, reason = text[:stop_at], "stop_sequence"
    elif limit_chars < len(text):
        text, reason = text[:limit_chars], "max_tokens"
    else:
        reason = "end_turn"
    return Generation(
        text=text,
        input_tokens=prompt.input_tokens,
        output_tokens=count_tokens(text),
        stop_reason=reason,
        stop_sequence=matched if reason == "stop_sequence" else None,
    )


def embedding(fingerprint: bytes, dimensions: int, *, normalize: bool = True) -> list[float]:
    """A deterministic vector: uniform components from a SHA-256 chain, unit length when normalised."""
    needed = dimensions * 2
    buffer = bytearray()
    digest = fingerprint
    while len(buffer) < needed:
        digest = hashlib.sha256(digest).digest()
        buffer += digest
    raw = struct.unpack(f">{dimensions}H", bytes(buffer[:needed]))
    vector = [(value / 32767.5) - 1.0 for value in raw]
    if normalize:
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        vector = [v / norm for v in vector]
    return [round(v, 6) for v in vector]
