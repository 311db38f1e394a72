"""Webhook events: payloads, signatures, retry delays and the addresses deliveries may reach."""
