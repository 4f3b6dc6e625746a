"""The runtime credentials (file or Secrets Manager secret) and encryption at rest."""
