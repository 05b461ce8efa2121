"""Domain errors raised by adapters. Never match on message strings: match on these types."""

from __future__ import annotations


class TransientError(Exception):
    """Worth retrying: throttling, a partial failure, a service hiccup."""
