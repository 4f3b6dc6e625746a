"""Finding provider declarations: a provider `<id>` of the layer is the package `boothbridge.providers.<id>` and
its `DECLARATION`; a `PROVIDER_PLUGINS` entry that names a `ProviderDeclaration` adds (or replaces) one.

No list of provider names exists anywhere else: the catalog says which providers a deployment offers, and this
module says what each of them declares.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import cache

from boothbridge.providers.declaration import ProviderDeclaration, resolve

_PACKAGE = "boothbridge.providers"


@cache
def packaged(provider_id: str) -> ProviderDeclaration | None:
    """The declaration of the layer's provider `provider_id`, or None when the layer has no such package.

    Raises TypeError when the package exists but declares nothing usable (a provider folder without its
    `DECLARATION` is a mistake to see at once, not a provider that silently never works)."""
    if not provider_id.isidentifier():
        return None
    name = f"{_PACKAGE}.{provider_id}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # only "no such provider": an import failing inside the package is raised
            return None
        raise
    if not hasattr(module, "__path__"):  # a module of this package (base, quota, ...), not a provider folder
        return None
    declaration = getattr(module, "DECLARATION", None)
    if not isinstance(declaration, ProviderDeclaration) or declaration.id != provider_id:
        raise TypeError(f"{name}.DECLARATION must be the ProviderDeclaration of {provider_id!r}")
    return declaration


def packaged_all() -> list[ProviderDeclaration]:
    """Every provider package of the layer (for the environment variables they declare)."""
    base = importlib.import_module(_PACKAGE)
    found = (packaged(m.name) for m in pkgutil.iter_modules(base.__path__) if m.ispkg)
    return [d for d in found if d is not None]


def plugin_declarations(specs: Iterable[str]) -> dict[str, ProviderDeclaration]:
    """The `PROVIDER_PLUGINS` entries that name a declaration, by provider id (the other entries name a provider
    class, factory or instance: see `registry.build_providers`)."""
    out: dict[str, ProviderDeclaration] = {}
    for spec in specs:
        target = resolve(spec)
        if isinstance(target, ProviderDeclaration):
            out[target.id] = target
    return out


def declaration_of(provider_id: str, plugin_specs: Iterable[str] = ()) -> ProviderDeclaration | None:
    """The declaration in effect for one provider: a plugin's, else the layer's package's, else None."""
    return plugin_declarations(plugin_specs).get(provider_id) or packaged(provider_id)


def declared_env_names(plugin_specs: Iterable[str] = ()) -> set[str]:
    """Every environment variable some provider declares (upper case)."""
    declarations = [*packaged_all(), *plugin_declarations(plugin_specs).values()]
    return {name for d in declarations for name in d.env_names}
