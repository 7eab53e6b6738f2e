"""Domain logic that several packages above share, so that none of them imports another for it.

- :mod:`.monitors`: a monitor as components and maintenance windows see it (:class:`MonitorRef`).
- :mod:`.maintenance`: which maintenance windows are in effect, and their occurrences over a span.
- :mod:`.uptime`: check counts from the rollups, the outage weighting, buckets left out for maintenance.
- :mod:`.components`: a status-page component's state from its monitors', and a page's overall state.
- :mod:`.leadership`: one active instance of a role (the alerter, the operator's loops) by a database lease.
- :mod:`.global_maintenance`: the platform-wide switch that holds every page (and its status-page banner).
- :mod:`.organizations`: the stored Organizations (tenants) and their use of their plans.

The alerter, status pages and the operator all read these; they sit below all three.
"""
