"""Twilio: SMS and voice channels and the webhooks that acknowledge by SMS reply or key press."""
