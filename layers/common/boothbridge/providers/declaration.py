"""What a provider declares about itself, so that settings, the settings store, the settings API, the settings page
and /health can serve it without knowing its name.

Each provider package exposes `DECLARATION` in its `__init__` (`boothbridge/providers/<id>/__init__.py`); a
third-party or test provider names its declaration in `PROVIDER_PLUGINS`. A declaration is cheap to import: the
adapter (and its SDK) is imported only when `build` is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boothbridge.catalog import Catalog
    from boothbridge.providers.base import Provider
    from boothbridge.settings import Settings

# An API key typed on the settings page: printable ASCII only (no line breaks that could split a header).
KEY_PATTERN = r"^[\x20-\x7e]*$"


@dataclass(frozen=True)
class EnvVar:
    """An environment variable the provider reads (e.g. `GEMINI_BASE_URL`), with its default when unset."""

    name: str
    default: str | None = None
    description: str = ""


@dataclass(frozen=True)
class ApiKeySpec:
    """The provider's API keys: where the environment gives them, and how the settings page and API show them.

    `env` is the variable (`GEMINI_API_KEY`); `field` the settings API's request field (`gemini_api_key`);
    `several`: a comma-separated list of keys is allowed; `max_length` bounds the field (characters).
    """

    env: str
    field: str
    label: str
    help: str = ""
    several: bool = False
    max_length: int = 500

    def from_env(self, value: str | None) -> list[str]:
        """The keys an environment value gives: comma-separated when `several`, else the value itself."""
        if not value:
            return []
        if self.several:
            return split_keys(value)
        return [value]


@dataclass(frozen=True)
class ProbeFacts:
    """What a health probe sees: whether this process built the adapter, and the API keys in effect (the settings
    page's, else the environment's; empty for a provider without keys)."""

    built: bool
    keys: tuple[str, ...] = ()


Probe = Callable[[ProbeFacts], bool]


def keys_present(facts: ProbeFacts) -> bool:
    """Configured when it has at least one API key in effect (an online provider)."""
    return bool(facts.keys)


def adapter_built(facts: ProbeFacts) -> bool:
    """Configured when this process could build it (an offline provider needs nothing more)."""
    return facts.built


def split_keys(value: str) -> list[str]:
    """`"k1, k2,,"` -> `["k1", "k2"]`."""
    return [k.strip() for k in value.split(",") if k.strip()]


@dataclass(frozen=True)
class ProviderDeclaration:
    """A provider as the rest of the service sees it.

    `id` matches `providers[].id` in the catalog. `factory` is `"module:callable"`, called as
    `callable(settings, catalog)` and returning the `Provider`; it is imported only by `build`. `api_key` is None
    for a provider without keys. `env` lists its other environment variables. `probe` says whether it is
    configured (default: `keys_present` with an `api_key`, else `adapter_built`); /health reports it.
    """

    id: str
    factory: str
    api_key: ApiKeySpec | None = None
    env: tuple[EnvVar, ...] = ()
    probe: Probe | None = None

    @property
    def env_names(self) -> tuple[str, ...]:
        """Every environment variable it reads, upper case."""
        names = tuple(v.name.upper() for v in self.env)
        return (self.api_key.env.upper(), *names) if self.api_key is not None else names

    def env_value(self, settings: Settings, name: str) -> str | None:
        """The value of one of its variables: what the settings read (`settings.provider_env`), else its default.

        Raises KeyError for a name it does not declare (a typo would otherwise read as "unset")."""
        upper = name.upper()
        if upper not in self.env_names:
            raise KeyError(f"provider {self.id!r} declares no environment variable {name!r}")
        default = next((v.default for v in self.env if v.name.upper() == upper), None)
        return settings.provider_env.get(upper, default)

    def env_keys(self, settings: Settings) -> list[str]:
        """The API keys the environment gives (empty without an `api_key` or when unset)."""
        if self.api_key is None:
            return []
        return self.api_key.from_env(self.env_value(settings, self.api_key.env))

    def configured(self, facts: ProbeFacts) -> bool:
        probe = self.probe or (keys_present if self.api_key is not None else adapter_built)
        return probe(facts)

    def build(self, settings: Settings, catalog: Catalog) -> Provider:
        """Import the factory and make the adapter (the only moment the adapter's module is imported)."""
        provider: Provider = resolve(self.factory)(settings, catalog)
        return provider


def resolve(spec: str) -> Any:
    """`"package.module:attribute"` -> the attribute. Raises ValueError for another shape, ImportError or
    AttributeError when it is not there."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{spec!r} must look like 'package.module:attribute'")
    return getattr(importlib.import_module(module_name), attr)
