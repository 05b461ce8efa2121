"""The migration pipeline's domain logic: pure functions and small services over ports."""
