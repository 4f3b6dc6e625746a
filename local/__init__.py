"""The local emulator: every function in one ASGI app, with the worker and cleanup loops in-process."""
