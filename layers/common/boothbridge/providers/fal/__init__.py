"""The `fal` provider: fal.ai's queue API (httpx; see `adapter`), its wire module (no I/O) and its webhook
signature check.

`DECLARATION` is what the rest of the service knows of it; importing this package imports no adapter."""

from boothbridge.providers.declaration import ApiKeySpec, EnvVar, ProviderDeclaration, keys_present

DECLARATION = ProviderDeclaration(
    id="fal",
    factory="boothbridge.providers.fal.adapter:FalProvider",
    api_key=ApiKeySpec(
        env="FAL_KEY",
        field="fal_key",
        label="fal API key",
        # Several keys: a key answering 429 is rested and the next one used.
        help="Several keys may be given, comma-separated.",
        several=True,
        max_length=2000,
    ),
    env=(
        EnvVar("FAL_QUEUE_URL", "https://queue.fal.run", "the queue API's base (a fake or a proxy)"),
        EnvVar(
            "FAL_JWKS_URL",
            "https://rest.alpha.fal.ai/.well-known/jwks.json",
            "where fal publishes the keys that sign its webhook deliveries",
        ),
    ),
    probe=keys_present,
)
