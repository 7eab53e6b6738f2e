"""Notifications: one module per channel behind one interface, delivered through the outbox."""
