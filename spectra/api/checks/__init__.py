"""The settings block of each check type, one module per type (the checker of the same name is in
`spectra.probe.checks`). A Monitor's spec holds exactly one of them, named after its `type`."""
