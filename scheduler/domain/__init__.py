"""The domain: what the scheduler does with jobs and batches, free of HTTP and of Kubernetes."""
