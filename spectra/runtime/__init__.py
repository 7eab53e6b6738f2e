"""What every SpectraMonitor process shares, below every domain package.

The lifecycle of a server process (:mod:`.lifecycle`), readiness (:mod:`.readiness`), the metrics
registry (:mod:`.metrics`), the "run until stopped" loop (:mod:`.loop`), request bodies and forms
(:mod:`.forms`), security headers (:mod:`.headers`), Jinja environments (:mod:`.templates`), time
formatting (:mod:`.timefmt`), the secret key `spectra run` keeps on disk (:mod:`.kept_key`) and the
garbage collector's freeze once a server is ready (:mod:`.collector`).
Nothing here knows about monitors, incidents or pages, and nothing here imports another package of ours.
"""
