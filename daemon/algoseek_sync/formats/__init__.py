"""Pure parsing of Algoseek vendor files: bytes in, typed frames out."""
