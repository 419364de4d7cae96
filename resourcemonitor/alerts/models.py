"""Incidents, channels and the notification outbox (see the alerting issue)."""
