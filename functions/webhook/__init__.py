"""The webhook function: provider callbacks under /webhooks/{provider_id}/{token}."""
