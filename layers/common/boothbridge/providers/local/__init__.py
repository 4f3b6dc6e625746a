"""The `local` provider: its adapter and its pure Pillow operations."""
