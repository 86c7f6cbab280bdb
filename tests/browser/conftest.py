"""The browser tests drive the dashboard of the session's local stack (fixtures in tests/conftest.py)."""
