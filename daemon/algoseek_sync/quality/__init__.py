"""Data quality: checks of stored bars, findings, delivery monitoring and the HTML report."""
