"""A mining run: its configuration, its location and store, its lock, and its steps."""
