"""The long-running process: threads and signals, sd_notify, Prometheus metrics, the health verdict."""
