"""Benchmarks of the bridge itself (`make bench`): what the queue costs on top of calling a provider inline."""
