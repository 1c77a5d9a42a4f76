"""HTTP: where requests start and stop."""
