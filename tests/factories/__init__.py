"""Test data, built one way: each module makes the objects of one area.

- `store`: rows in a migrated database (monitors through the real loader path, states, leases).
- `monitors`: Monitor specs for local targets (tcp, heartbeat) with budgets a busy machine meets.
- `alerting`: a world of contacts, schedules, policies and incidents for the alerter; a site serving ack links and webhooks.
- `notify`: messages and channel builders for the notification tests.
- `oncall`: schedule layers and instants.
- `pages`: status-page snapshots and a database with pages, monitors and rollups.
- `manifests`: custom-resource bodies and YAML for the operator, kubectl and the processes.

Stand-ins for real services (providers, targets, the Kubernetes emulator) are in tests/support.
"""
