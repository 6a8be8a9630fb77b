"""The Kubernetes backend: Jobs, payload Secrets and Services through the official client."""
