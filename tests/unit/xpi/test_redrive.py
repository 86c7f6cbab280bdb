"""The consumer's intake records (who sent a message that may be redriven) are keyed without plain hashes
of content."""

import hashlib

from xpi.services.redrive import body_key

from tests.helpers.fakes import FakeHashKey


def test_an_intake_record_is_keyed_by_a_keyed_hash_of_the_body_never_its_plain_sha256() -> None:
    # GIVEN a short, guessable body
    body = '{"model": "default", "prompt": "yes"}'

    # WHEN it is keyed under two different stack keys
    first, second = body_key(body, FakeHashKey(b"k" * 32)), body_key(body, FakeHashKey(b"j" * 32))

    # THEN neither is the SHA-256 anyone could compute from a guess, and the key decides the value
    assert hashlib.sha256(body.encode()).hexdigest() not in {first, second}
    assert first != second
    assert body_key(body, FakeHashKey(b"k" * 32)) == first
