"""Notifications: rules on events send to team and role feeds, webhooks and email (outbox)."""
