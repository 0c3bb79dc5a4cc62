"""``python -m algoseek_sync`` runs the CLI."""

from algoseek_sync.commands.cli import main

if __name__ == "__main__":  # importing the module (multiprocessing does, as __mp_main__) runs nothing
    main()
