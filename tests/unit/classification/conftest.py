"""Hypothesis profiles for the classifier's property tests.

``classification`` (the default) keeps ``make test`` fast and repeatable: the same 50 generated examples
per property on every run (derandomized), so a red CI always replays. ``HYPOTHESIS_PROFILE=thorough``
explores: many more examples per property, drawn at random each run. No example database is kept (the
work tree stays clean): a failure prints its falsifying example and a ``@reproduce_failure`` blob, and
``--hypothesis-seed=N`` replays a run.
"""

import os

from hypothesis import settings

settings.register_profile(
    "classification", max_examples=50, deadline=None, database=None, print_blob=True, derandomize=True
)
settings.register_profile("thorough", max_examples=2000, deadline=None, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "classification"))
