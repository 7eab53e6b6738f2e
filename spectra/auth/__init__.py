"""Accounts, roles and sessions: who may do what, proven how. No HTTP here: the web floor mounts it.

One module per concept:

- `passwords.py`: argon2id hashes (parameters inside each hash, raised ones rehash at sign-in) and the
  NIST 800-63B rules (length, a list of breached passwords, no composition rules).
- `totp.py`: TOTP enrolment and verification (RFC 6238, a code good once per time step), the secret sealed
  at rest, single-use recovery codes kept as keyed digests, the enrolment QR code as server-made SVG.
- `access_tokens.py`: short-lived access JWTs (pinned algorithm, `kid` for key rotation, the RFC 8693
  `act` claim while impersonating).
- `sessions.py`: sign-in sessions as refresh token families: rotation on every use, idle and absolute
  lifetimes, reuse of a rotated token revokes the family, logout and sign out everywhere.
- `api_tokens.py`: named, scoped API tokens, shown once, kept as digests.
- `policy.py`: the one place that decides every permission (roles, scopes, tenant isolation).
- `throttle.py`: growing delays after failed sign-ins, per account and per client address.
- `audit.py`: the append-only audit log: writing, filtering, exporting.
- `organization_settings.py`: what an organization's admins decide at runtime (require MFA of every member).
- `accounts.py`: users, memberships, invitations, password resets and the first admin's setup link.
- `impersonation.py`: a platform admin acting as an organization's member for a written reason, at most an
  hour, told to the organization's admins, audited with both names, ended at once.
- `tenants.py`: every Organization with plan, usage, trial, suspension, members and last activity, for
  platform admins; trial reminders to each organization's admins.
- `mail.py`: account and tenant mails queued in the notification outbox, once per idempotency key.
- `sso.py`: single sign-on with OpenID Connect: the providers' settings, and what a verified identity
  becomes (the account, memberships from group mappings, a session with the second factor left to the
  provider).
- `global_maintenance.py`: turning global maintenance on and off, audited (its state, which the alerter
  and status pages read: spectra.domain.global_maintenance).
"""
