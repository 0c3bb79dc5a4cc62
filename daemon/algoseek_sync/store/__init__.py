"""The embedded store's storage engine: bars as compressed per-SecId chunks in the state database."""
