"""Reads the environment variables the providers declare into `Settings.provider_env`.

The variables (GEMINI_API_KEY, TURBOTEXT_BASE_URL, a plugin's own ...) are read from the same places, in the same
order, as every other setting: constructor keywords (any case: `Settings(gemini_api_key=...)`), then the process
environment, then the `.env` file the settings were given (none with `_env_file=None`). An explicit
`provider_env={"NAME": value}` keyword wins over all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
)

from boothbridge.providers.discovery import declared_env_names

FIELD = "provider_env"
PLUGINS_FIELD = "provider_plugins"


def overlay(found: dict[str, str], values: Mapping[str, Any], names: set[str]) -> None:
    """Put the declared variables among `values` over `found` (names compared case-insensitively, kept upper
    case); a None value unsets (`Settings(gemini_api_key=None)` ignores the environment's key, as before)."""
    for key, value in values.items():
        if key.upper() in names:
            if value is None:
                found.pop(key.upper(), None)
            else:
                found[key.upper()] = str(value)


class ProviderEnvironment(PydanticBaseSettingsSource):
    """A pydantic-settings source giving the one field `provider_env` (variable name, upper case -> value)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init: InitSettingsSource,
        env: EnvSettingsSource,
        dotenv: DotEnvSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self.init, self.env, self.dotenv = init, env, dotenv

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is given at once by __call__

    def _plugins(self) -> list[str]:
        # The plugin list is itself a setting: take it where the settings will (keywords, environment, .env).
        for source in (self.init, self.env, self.dotenv):
            value = source().get(PLUGINS_FIELD)
            if value is not None:
                return [str(v) for v in value]
        return []

    def __call__(self) -> dict[str, Any]:
        names = declared_env_names(self._plugins())
        found: dict[str, str] = {}
        for layer in (self.dotenv.env_vars, self.env.env_vars, self.init.init_kwargs):  # lowest priority first
            overlay(found, layer, names)
        explicit: Mapping[str, Any] = self.init.init_kwargs.get(FIELD) or {}
        overlay(found, explicit, {k.upper() for k in explicit})
        return {FIELD: found}


def sources(
    settings_cls: type[BaseSettings],
    init: PydanticBaseSettingsSource,
    env: PydanticBaseSettingsSource,
    dotenv: PydanticBaseSettingsSource,
    secrets: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """pydantic-settings' default sources, with the provider environment first (it is the only one that gives
    `provider_env`)."""
    assert isinstance(init, InitSettingsSource)
    assert isinstance(env, EnvSettingsSource)
    assert isinstance(dotenv, DotEnvSettingsSource)
    return ProviderEnvironment(settings_cls, init, env, dotenv), init, env, dotenv, secrets
