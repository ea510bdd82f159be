"""suites layer."""
