"""The console's platform area, for platform admins (in their own session, never while impersonating):
tenants, impersonation, global maintenance, every organization's audit log, and the system page (probe
workers, the active alerter, the outbox backlog, the database and its schema revision). Pages under
`/console/platform`; JSON: GET /api/v1/platform/system here, the rest spectra.web.admin_routes'.
"""
