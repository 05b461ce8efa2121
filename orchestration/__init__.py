"""Wavepilot orchestration: manifests, planning, publishing and the migration pipeline."""
