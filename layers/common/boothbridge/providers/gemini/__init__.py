"""The `gemini` provider: its adapter (google-genai SDK) and its wire module (no I/O).

`DECLARATION` is what the rest of the service knows of it; importing this package does not import the SDK."""

from boothbridge.providers.declaration import ApiKeySpec, EnvVar, ProviderDeclaration, keys_present

DECLARATION = ProviderDeclaration(
    id="gemini",
    factory="boothbridge.providers.gemini.adapter:GeminiProvider",
    api_key=ApiKeySpec(
        env="GEMINI_API_KEY",
        field="gemini_api_key",
        label="Gemini API key",
        # Several keys: a key answering 429 is rested and the next one used.
        help="Several keys may be given, comma-separated.",
        several=True,
        max_length=2000,
    ),
    env=(EnvVar("GEMINI_BASE_URL", None, "where the SDK sends requests (a proxy or a fake); unset: the real service"),),
    probe=keys_present,
)
