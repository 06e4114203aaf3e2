"""Controller: fixed-rate core loop, device supervision, API server."""
