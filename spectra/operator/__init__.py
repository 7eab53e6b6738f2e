"""The Kubernetes operator: custom resources -> the store, `.status`, Events and owned children.

`spectra operator` runs it (`service.run_operator`); handlers stay thin and call the same loader as
standalone mode (`spectra.reconcile`).
"""
