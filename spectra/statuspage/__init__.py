"""Public status pages: view model, snapshots, uptime, component state and page incidents."""
