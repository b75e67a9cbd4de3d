"""The Prometheus exporter: metric families from snapshots, and the HTTP server that serves them."""
