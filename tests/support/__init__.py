"""Helpers shared by tests: real git repositories and small wave manifests."""
