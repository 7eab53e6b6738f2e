"""The HTTP side of a SpectraMonitor process: health, metrics, the monitor API, heartbeat pushes."""
