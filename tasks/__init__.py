"""Thin Prefect tasks, one per pipeline step, each wrapping one rosetta_core function."""
