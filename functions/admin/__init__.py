"""The admin function: the operator API under /api (JWT bearer)."""
