"""Watching the drop: mounts, filesystem events, the observer, intake and its stability gate, stat-only reconciles. Turns the filesystem into ledger entries; never reads a file's contents."""
