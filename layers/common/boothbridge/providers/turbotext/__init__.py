"""The `turbotext` provider: its adapter (httpx) and its wire module (no I/O)."""
