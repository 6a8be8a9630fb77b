"""End-to-end scenarios against a real cluster (SCHEDULER_E2E_KUBECONFIG) or, on request
(SCHEDULER_E2E_FAKE=1), the in-process fake API server."""
