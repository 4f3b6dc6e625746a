"""The cleanup function: run on a schedule (EventBridge on AWS, a loop in the emulator)."""
