"""xpi's errors render only their code's fixed message; what a raise site said is its `reason`."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from xpi.domain.errors import XpiError


@contextmanager
def raises_with_reason(kind: type[XpiError], pattern: str) -> Iterator[Any]:
    """pytest.raises(kind) whose error's reason (not its rendered message) matches `pattern`."""
    with pytest.raises(kind) as caught:
        yield caught
    assert re.search(pattern, caught.value.reason), caught.value.reason
