"""Backends run jobs somewhere; the domain sees only the `Backend` protocol in `base`."""
