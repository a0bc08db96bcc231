"""Prefect flows and the `rosetta` command line (compose tasks; no arithmetic here)."""
