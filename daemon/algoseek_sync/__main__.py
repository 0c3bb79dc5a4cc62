"""``python -m algoseek_sync`` runs the CLI."""

from algoseek_sync.cli import main

if __name__ == "__main__":  # the parse process (spawn) imports this module too, as __mp_main__
    main()
