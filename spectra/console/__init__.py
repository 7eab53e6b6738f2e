"""The console: server-rendered pages for the people who answer incidents, run status pages, manage an
organization or the platform, at `/console`.

Usable without script; a small vendored script (htmx, `static/vendor/VENDORED.md`) and Server-Sent
Events add live updates. Config is shown, never edited (it lives in Git); what is operational is done here,
through the same functions the JSON API under `/api/v1` and the command line call.

One module per concept:

- `viewer.py`: who is looking (the session cookie, checked against the store), the CSRF token of forms,
  renewing an expired access cookie with the refresh cookie.
- `rendering.py`: the Jinja environment, the base layout (navigation by role, the impersonation and
  global maintenance banners), the console's headers and Content-Security-Policy.
- `assets.py`: the console's own static files (CSS, script, the vendored htmx), with cache-busting names.
- `routes.py`: the console's routes, mounted by the processes that serve people (`spectra run`, `spectra web`).

The console sits above `spectra.web` (signing in, credentials, the admin JSON endpoints) and below the
processes, which mount it: `spectra/web/app.py` takes it in `AppParts.routes`.
"""
