"""The `turbotext` provider: its adapter (httpx) and its wire module (no I/O).

`DECLARATION` is what the rest of the service knows of it; importing this package imports no adapter."""

from boothbridge.providers.declaration import ApiKeySpec, EnvVar, ProviderDeclaration, keys_present

DECLARATION = ProviderDeclaration(
    id="turbotext",
    factory="boothbridge.providers.turbotext.adapter:TurbotextProvider",
    api_key=ApiKeySpec(env="TURBOTEXT_API_KEY", field="turbotext_api_key", label="Turbotext API key", max_length=500),
    env=(
        EnvVar("TURBOTEXT_BASE_URL", "https://www.turbotext.ru/api_ai", "the Turbotext API's base (a fake or a proxy)"),
    ),
    probe=keys_present,
)
