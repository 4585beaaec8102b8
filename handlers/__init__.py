"""Example functions; the default `ROUTER_HANDLERS` package."""
