"""Unit tests of the xpi Lambda package (classification has its own folder)."""
