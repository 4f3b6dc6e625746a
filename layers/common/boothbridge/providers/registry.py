"""Builds the provider adapters named in the catalog, once per process."""

from __future__ import annotations

import importlib
from typing import Any

from boothbridge.catalog import Catalog
from boothbridge.providers.base import Provider
from boothbridge.settings import Settings


def load_plugin(spec: str, settings: Settings) -> Provider:
    """`module:attribute` -> a Provider. The attribute is a class or factory taking `settings`, or an instance."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"provider plugin {spec!r} must look like 'package.module:attribute'")
    target: Any = getattr(importlib.import_module(module_name), attr)
    # A class or a factory function is called with the settings; anything with `run` is already a provider.
    is_factory = isinstance(target, type) or not hasattr(target, "run")
    provider: Provider = target(settings) if is_factory else target
    return provider


def build_providers(settings: Settings, catalog: Catalog) -> dict[str, Provider]:
    """Adapters for every provider in the catalog that this process can run (plugins may add or replace)."""
    from boothbridge.providers.local.adapter import LocalProvider

    providers: dict[str, Provider] = {}
    if "local" in catalog.providers:
        providers["local"] = LocalProvider()
    # Online providers are built even without an API key (it may be set later); a call without one fails
    # with `api_key_missing`, and /health reports them as not configured.
    if "gemini" in catalog.providers:
        from boothbridge.providers.gemini.adapter import GeminiProvider

        providers["gemini"] = GeminiProvider(settings, catalog)
    if "turbotext" in catalog.providers:
        from boothbridge.providers.turbotext.adapter import TurbotextProvider

        providers["turbotext"] = TurbotextProvider(settings)
    for spec in settings.provider_plugins:
        provider = load_plugin(spec, settings)
        providers[provider.id] = provider
    return providers
