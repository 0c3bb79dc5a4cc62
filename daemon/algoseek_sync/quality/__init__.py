"""Data quality: checks of stored bars, their findings, the exchange calendar, delivery monitoring."""
