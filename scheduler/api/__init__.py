"""The HTTP layer: route table, thin handlers and the one error middleware."""
