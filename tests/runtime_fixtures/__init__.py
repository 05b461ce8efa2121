"""Tiny Lambda handlers and a recorder, used only by tests of the local runtime."""
