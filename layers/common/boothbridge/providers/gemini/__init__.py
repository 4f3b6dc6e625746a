"""The `gemini` provider: its adapter (google-genai SDK) and its wire module (no I/O)."""
