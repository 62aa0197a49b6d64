"""Test beds that exercise the library end to end on one environment family."""
