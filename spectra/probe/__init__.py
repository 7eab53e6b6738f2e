"""Probe engine: one checker per check type, the egress guard, the scheduler and the worker loop."""
