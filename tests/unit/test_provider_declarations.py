"""Provider declarations: every catalog provider has one, importing it is cheap, and the environment variables
they declare are read like every other setting (keywords, environment, .env) without Settings naming them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from boothbridge.providers.declaration import ApiKeySpec, ProbeFacts, ProviderDeclaration
from boothbridge.providers.discovery import declaration_of, declared_env_names, packaged
from boothbridge.settings import DEFAULT_CATALOG, PROJECT_ROOT, Settings

# Every variable the README documents for the providers keeps working.
DOCUMENTED = {"GEMINI_API_KEY", "GEMINI_BASE_URL", "TURBOTEXT_API_KEY", "TURBOTEXT_BASE_URL"}


@pytest.fixture(autouse=True)
def _no_provider_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DOCUMENTED:
        monkeypatch.delenv(name, raising=False)


def test_every_catalog_provider_is_declared_by_its_package() -> None:
    ids = [p["id"] for p in json.loads(DEFAULT_CATALOG.read_text())["providers"]]
    for provider_id in ids:
        declaration = packaged(provider_id)
        assert declaration is not None and declaration.id == provider_id
    assert DOCUMENTED <= declared_env_names()
    assert packaged("sleepy") is None and packaged("quota") is None  # no package / a module, not a provider


def test_importing_a_declaration_imports_no_adapter() -> None:
    code = (
        "import sys, boothbridge.providers.gemini, boothbridge.providers.turbotext, boothbridge.providers.local;"
        "print(sorted(m for m in sys.modules if m.startswith('google') or m.endswith('.adapter')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "[]"


def test_the_environment_keywords_and_env_file_give_provider_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "env-a, env-b")
    env_file = tmp_path / ".env"
    env_file.write_text("GEMINI_API_KEY=file-key\nTURBOTEXT_BASE_URL=http://file.example/api\n")

    s = Settings(_env_file=env_file)
    gemini, turbotext = packaged("gemini"), packaged("turbotext")
    assert gemini is not None and turbotext is not None
    assert gemini.env_keys(s) == ["env-a", "env-b"]  # the environment over the .env file, split (several keys)
    assert turbotext.env_value(s, "TURBOTEXT_BASE_URL") == "http://file.example/api"
    assert turbotext.env_keys(s) == []

    s = Settings(_env_file=None, gemini_api_key="kw-key", TURBOTEXT_API_KEY="t, 1")
    assert gemini.env_keys(s) == ["kw-key"]  # a keyword over the environment, in any case
    assert turbotext.env_keys(s) == ["t, 1"]  # one key, taken as given
    assert turbotext.env_value(s, "turbotext_base_url") == "https://www.turbotext.ru/api_ai"  # the default
    assert gemini.env_value(s, "GEMINI_BASE_URL") is None

    assert gemini.env_keys(Settings(_env_file=None, gemini_api_key=None)) == []  # None unsets the environment's
    assert "kw-key" not in repr(s)
    with pytest.raises(KeyError):
        gemini.env_value(s, "GEMINI_BASE_ULR")  # a typo is an error, not "unset"


def test_model_copy_takes_provider_variables_like_the_constructor() -> None:
    s = Settings(_env_file=None, gemini_api_key="a", turbotext_api_key="t").model_copy(
        update={"gemini_base_url": "http://fake", "turbotext_api_key": None, "port": 9000}
    )
    assert (s.port, s.provider_env) == (9000, {"GEMINI_API_KEY": "a", "GEMINI_BASE_URL": "http://fake"})


def test_a_plugin_declaration_adds_its_variables_and_replaces_a_packaged_one() -> None:
    spec = "tests.unit.test_provider_declarations:GEMINI_STANDIN"
    s = Settings(_env_file=None, provider_plugins=[spec], standin_key="k1,k2")
    assert declaration_of("gemini", s.provider_plugins) is GEMINI_STANDIN
    assert GEMINI_STANDIN.env_keys(s) == ["k1,k2"]


def test_probes_default_to_keys_for_keyed_providers_and_to_the_adapter_otherwise() -> None:
    keyed = ProviderDeclaration("x", "m:f", api_key=ApiKeySpec(env="X_KEY", field="x_key", label="X"))
    plain = ProviderDeclaration("y", "m:f")
    assert not keyed.configured(ProbeFacts(built=True)) and keyed.configured(ProbeFacts(built=True, keys=("k",)))
    assert plain.configured(ProbeFacts(built=True)) and not plain.configured(ProbeFacts(built=False))
    assert ApiKeySpec(env="X", field="x", label="X", several=True).from_env(" a, ,b ") == ["a", "b"]


GEMINI_STANDIN = ProviderDeclaration(
    "gemini", "m:f", api_key=ApiKeySpec(env="STANDIN_KEY", field="standin_key", label="Stand-in")
)


class _KeylessAdapter:
    """An adapter that forgot `set_keys`: keys saved on the settings page would never reach it."""

    id = "forgetful"

    def __init__(self, settings: Settings, catalog: object) -> None:
        pass

    async def run(self, request: object) -> object:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class _KeyedAdapter(_KeylessAdapter):
    def set_keys(self, keys: list[str]) -> None:
        self.keys = keys


def test_a_keyed_declaration_needs_an_adapter_that_takes_keys_while_it_runs() -> None:
    from boothbridge.catalog import Catalog
    from boothbridge.providers.registry import checked

    catalog = Catalog.load(DEFAULT_CATALOG)
    key = ApiKeySpec(env="FORGETFUL_KEY", field="forgetful_key", label="Forgetful")
    keyed = ProviderDeclaration("forgetful", f"{__name__}:_KeylessAdapter", api_key=key)
    with pytest.raises(TypeError, match="declares an API key but its adapter has no set_keys"):
        checked(keyed, keyed.build(Settings(_env_file=None), catalog))
    fixed = ProviderDeclaration("forgetful", f"{__name__}:_KeyedAdapter", api_key=key)
    assert isinstance(checked(fixed, fixed.build(Settings(_env_file=None), catalog)), _KeyedAdapter)
    keyless = ProviderDeclaration("forgetful", f"{__name__}:_KeylessAdapter")  # no key: no set_keys needed
    assert isinstance(checked(keyless, keyless.build(Settings(_env_file=None), catalog)), _KeylessAdapter)
