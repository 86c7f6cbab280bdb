"""Shared test support: sample events, builders, in-memory fakes of xpi's Protocols, moto resources."""
