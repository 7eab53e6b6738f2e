"""One module per long-running command: what `spectra run`, `probe`, `alerter`, `web` and `operator`
start, how they are wired together and in which order they stop. The shared bootstrap (database and
schema, public URL, secret key) is :mod:`.bootstrap`; the lifecycle itself is :mod:`spectra.runtime`.
"""
