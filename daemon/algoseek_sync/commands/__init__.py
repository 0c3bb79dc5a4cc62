"""The command line and what only it uses: run --once, reprocess, read-only views, output formats, the HTML report."""
