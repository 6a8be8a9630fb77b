"""The local backend: jobs as child processes, state in SQLite."""
