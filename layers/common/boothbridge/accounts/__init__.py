"""Operators: passwords and tokens, sign-in, ended sessions, login throttling."""
