"""End-to-end, soak and whole-house tests."""
