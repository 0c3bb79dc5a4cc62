"""``python -m algoseek_sync`` runs the CLI."""

from algoseek_sync.cli import main

main()
