"""The `local` provider: its adapter and its pure Pillow operations. No key, no environment: configured whenever
this process could build it."""

from boothbridge.providers.declaration import ProviderDeclaration, adapter_built

DECLARATION = ProviderDeclaration(id="local", factory="boothbridge.providers.local.adapter:build", probe=adapter_built)
