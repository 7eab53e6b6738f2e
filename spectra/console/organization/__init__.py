"""The console's organization area, for an organization's admins: members (invite, role, disable and
enable, reset two-factor authentication, remove, require two-factor authentication of everyone), API
tokens (one's own, and the members' where the policy allows), plan, usage and trial, and the audit log
with its exports. Pages under `/console/organization`; the JSON endpoints are spectra.web.admin_routes'.
"""
