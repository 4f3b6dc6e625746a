"""Builds the provider adapters named in the catalog, once per process, from their declarations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from boothbridge.catalog import Catalog
from boothbridge.providers.base import KeyedProvider, Provider
from boothbridge.providers.declaration import ProviderDeclaration, resolve
from boothbridge.providers.discovery import declaration_of
from boothbridge.settings import Settings


def load_plugin(spec: str, settings: Settings) -> Provider:
    """`module:attribute` -> a Provider, for a plugin that names an adapter rather than a declaration. The attribute
    is a class or factory taking `settings`, or an instance. Raises ValueError for a spec of another shape."""
    target: Any = resolve(spec)
    # A class or a factory function is called with the settings; anything with `run` is already a provider.
    is_factory = isinstance(target, type) or not hasattr(target, "run")
    provider: Provider = target(settings) if is_factory else target
    return provider


def declarations(settings: Settings, provider_ids: Iterable[str]) -> dict[str, ProviderDeclaration]:
    """The declarations in effect for these providers (a plugin's over the layer's package's); a provider without
    one (a plugin adapter such as a test double) is left out: it has no keys, environment or settings field."""
    found = {pid: declaration_of(pid, settings.provider_plugins) for pid in provider_ids}
    return {pid: d for pid, d in found.items() if d is not None}


def build_providers(settings: Settings, catalog: Catalog) -> dict[str, Provider]:
    """Adapters for every provider in the catalog that has a declaration (plugins may add or replace).

    Online providers are built even without an API key (it may be set later on the settings page); a call
    without one fails with `api_key_missing`, and /health reports them as not configured."""
    providers: dict[str, Provider] = {}
    for provider_id, declaration in declarations(settings, catalog.providers).items():
        providers[provider_id] = checked(declaration, declaration.build(settings, catalog))
    for spec in settings.provider_plugins:
        target = resolve(spec)
        if not isinstance(target, ProviderDeclaration):
            provider = load_plugin(spec, settings)
            providers[provider.id] = provider
        elif target.id not in providers:  # a declared plugin the catalog does not name: built all the same
            providers[target.id] = checked(target, target.build(settings, catalog))
    return providers


def checked(declaration: ProviderDeclaration, provider: Provider) -> Provider:
    """A declaration with an API key promises an adapter that takes keys while it runs (`KeyedProvider`):
    without `set_keys`, keys saved on the settings page would be silently ignored."""
    if declaration.api_key is not None and not isinstance(provider, KeyedProvider):
        raise TypeError(f"provider {declaration.id!r} declares an API key but its adapter has no set_keys(keys)")
    return provider
