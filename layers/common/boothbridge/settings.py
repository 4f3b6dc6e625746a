"""Runtime configuration: one Settings object, built once by the composition root and passed in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from boothbridge.accounts.rate_limit import check_rate

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CATALOG = PROJECT_ROOT / "configs" / "providers.json"
# The longest a booth may be kept waiting for its answer (T_SYNC_RESPONSE, seconds): Breeze Booth waits 120 s by
# default. Whatever fronts ingest must wait longer (the ingest Lambda's timeout, the front door's origin timeout:
# infra/README.md). The settings page's API repeats this bound (functions/admin/schemas_settings.py).
MAX_T_SYNC_SEC = 120.0


class Settings(BaseSettings):
    """Every knob of the service, read from the environment (and `.env` when present).

    Outside local mode the service refuses to start on defaults that would be unsafe in production:
    an embedded database, local-folder media or an auto-generated credentials file.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    app_env: Literal["local", "test", "production"] = "local"
    data_dir: Path = Path(".data")

    # Database: unset -> embedded PostgreSQL under data_dir/pg.
    database_url: str | None = None
    db_pool_size: int = Field(20, ge=1, le=200)

    # Media: no S3 endpoint/bucket -> local folder MEDIA_ROOT (default data_dir/media).
    media_root: Path | None = None
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str = "us-east-1"

    # Timing and retention.
    t_sync_response: float = Field(48.0, gt=0, le=MAX_T_SYNC_SEC)
    result_ttl_sec: int = Field(72 * 3600, ge=60)
    source_ttl_sec: int = Field(60, ge=1)
    job_deadline_sec: float = Field(150.0, gt=0)
    # Append-only tables (processing_log, login_failures, revoked_tokens) keep this many days of rows; the
    # scheduled cleanup deletes older ones in batches (processing_log's counts are first folded into per-slot
    # totals, so all-time and since-reset counts survive). Statistics series reach back at most this far.
    log_retention_days: int = Field(90, ge=1)
    # A request body (ingest, admin uploads) that sends nothing for this long is cut with 408 request_timeout.
    body_timeout_sec: float = Field(30.0, gt=0)

    # Queue behaviour.
    lease_sec: float = Field(30.0, gt=0)
    heartbeat_sec: float = Field(10.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=10)
    # Leases that ran out (a worker died or hung) are counted apart from provider failures; a job whose lease runs
    # out more often than this fails as `lease_expired`. A graceful stop hands its jobs back and counts nothing.
    max_lease_expiries: int = Field(3, ge=0, le=20)
    # On SIGTERM a worker stops claiming, finishes what it runs for at most this long, then hands back the rest
    # (requeued at once, no attempt spent). A little under the platform's stop timeout (docker stop: 10 s).
    worker_grace_sec: float = Field(8.0, ge=0)
    retry_base_sec: float = Field(0.5, gt=0)
    retry_max_sec: float = Field(10.0, gt=0)
    worker_concurrency: int = Field(16, ge=1, le=256)
    fallback_poll_sec: float = Field(2.0, gt=0)
    # Back-pressure: a provider's queued+running jobs may reach max_parallel_jobs x this before ingest refuses.
    backlog_factor: int = Field(16, ge=1)
    # How a new job reaches a worker: "notify" (listening workers; local, self-hosted) or "lambda"
    # (an asynchronous invoke of WORKER_FUNCTION_NAME per job; AWS).
    worker_dispatch: Literal["notify", "lambda"] = "notify"
    worker_function_name: str | None = None
    aws_region: str = "eu-central-1"
    lambda_endpoint_url: str | None = None
    run_worker: bool = True
    # The local emulator's demonstration mode: Gemini and Turbotext fakes on loopback (see local/demo.py).
    demo_fakes: bool = False
    run_cleanup: bool = True
    cleanup_interval_sec: float = Field(15.0, gt=0)

    # Logs: `json` (one JSON object per line) or `text` (readable); JSON by default on Lambda. See README "Logs".
    log_format: Annotated[
        Literal["text", "json"], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)
    ] = Field(default_factory=lambda: "json" if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else "text")
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)
    ] = "INFO"

    # Input validation.
    max_upload_mb: float = Field(20.0, gt=0)
    # Every current camera's native size fits (Phase One IQ4: 14204 x 10652 = 151 MP; Fujifilm GFX100: 102 MP); a
    # decompression bomb (a small file that claims gigapixels) does not.
    max_image_pixels: int = Field(160_000_000, ge=1)

    # HTTP.
    port: int = 8000
    host: str = "127.0.0.1"
    # Where booths and browsers reach this service; unset -> http://localhost:PORT (local use only).
    public_base_url: str | None = None
    jwt_ttl_sec: int = Field(3600, ge=60)
    # Origins of a web UI served from elsewhere (a static site on its own domain), comma-separated: the operator
    # API answers their browsers' CORS requests. Empty: the UI is served from this service's own origin.
    web_origins: str = ""
    # The environment variables the providers declare (their API keys, base URLs, ...: see each provider's
    # `DECLARATION`), upper-case name -> value. Read by `providers.environment` from the keywords (any case:
    # `Settings(gemini_api_key=...)`), the environment and the .env file; providers read them through their
    # declaration (`env_value`), which also knows their defaults.
    provider_env: dict[str, str] = Field(default_factory=dict, repr=False)
    # Behind the CloudFront front door: the secret CloudFront sends to the admin origin (X-Origin-Verify), which
    # makes its CloudFront-Viewer-Address header believable for login throttling. Unset: the TCP peer counts.
    origin_verify_secret: str | None = Field(None, repr=False, min_length=16)
    # Temporary public links (POST /api/media/register, images handed to URL-fetching providers).
    public_link_ttl_sec: int = Field(900, ge=30)

    # Machine-client tasks (/api/v1/tasks; boothbridge.tasks). A task's time budget (video takes minutes); an input
    # URL's whole fetch (connect, redirects, body) is cut after TASK_FETCH_TIMEOUT_SEC and at most
    # TASK_FETCH_MAX_REDIRECTS redirects are followed (each re-checked). TASK_FETCH_ALLOW_PRIVATE: may an input URL
    # name a private, loopback, link-local or multicast address? Unset: yes except in production.
    task_deadline_sec: float = Field(900.0, gt=0)
    task_fetch_timeout_sec: float = Field(20.0, gt=0)
    task_fetch_max_redirects: int = Field(3, ge=0, le=10)
    task_fetch_allow_private: bool | None = None
    # How often the in-process delivery loop looks for outputs to PUT to a caller's writeUrl (seconds).
    task_delivery_poll_sec: float = Field(1.0, gt=0)
    # Machine clients (`/api/v1/*`): requests per API key in a moving window, a `limits` rate string ("120/minute",
    # "10/second;500/hour"), counted in RATE_LIMIT_STORAGE_URI: memory:// per process; a deployment of several
    # instances points it at a shared store (redis://host:6379) so they share one count (accounts/rate_limit.py).
    api_key_rate_limit: Annotated[str, AfterValidator(check_rate)] = "120/minute"
    rate_limit_storage_uri: str = Field("memory://", repr=False)
    # ArtMancer's API (seed 002; boothbridge.artmancer): the provider whose `combine_images` (photo + one more
    # image + prompt) runs the insertion and removal edits, and its model (unset: the operation's default); how
    # long `POST /api/smart-mask` and `/api/image-utils/extract-object` wait for their task (seconds; then 504).
    artmancer_edit_provider: str = Field("gemini", min_length=1, max_length=100)
    artmancer_edit_model: str | None = Field(None, min_length=1, max_length=100)
    artmancer_wait_sec: float = Field(30.0, gt=0, le=120)

    # Files. On AWS the credentials come from a Secrets Manager secret instead of the file (its SecretString is
    # the file's JSON); the endpoint is for a stand-in (tests) or a VPC endpoint with a private name.
    credentials_path: Path = Path("secrets/runtime_credentials.json")
    credentials_secret_arn: str | None = None
    secrets_endpoint_url: str | None = None
    providers_config: Path = DEFAULT_CATALOG
    # Extra providers, "module:attribute" each (third-party providers, test doubles): a `ProviderDeclaration`
    # (keys, environment, settings-page field, health probe), or a provider class, factory or instance.
    provider_plugins: list[str] = Field(default_factory=list)
    # The local `smart_mask`'s optional FastSAM backend: a checkpoint already on disk (e.g. FastSAM-s.pt; needs the
    # ultralytics package, not a project dependency). Unset: GrabCut. Set but absent: smart_mask fails (final).
    fastsam_weights: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        from boothbridge.providers.environment import sources

        return sources(settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """As pydantic's; a declared provider variable may be named in `update` as in the constructor
        (`update={"gemini_base_url": ...}`): it goes into `provider_env`."""
        if not update:
            return super().model_copy(update=update, deep=deep)
        from boothbridge.providers.discovery import declared_env_names
        from boothbridge.providers.environment import overlay

        names = declared_env_names(self.provider_plugins)
        rest = {k: v for k, v in update.items() if k.upper() not in names}
        if len(rest) < len(update):
            env = dict(rest.get("provider_env") or self.provider_env)
            overlay(env, update, names)
            rest["provider_env"] = env
        return super().model_copy(update=rest, deep=deep)

    @property
    def web_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.web_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _refuse_unsafe_defaults_in_production(self) -> Settings:
        if self.worker_dispatch == "lambda" and not self.worker_function_name:
            raise ValueError("WORKER_FUNCTION_NAME must be set when WORKER_DISPATCH=lambda")
        if self.app_env != "production":
            return self
        problems = []
        if not self.database_url:
            problems.append("DATABASE_URL must be set (no embedded PostgreSQL in production)")
        if not (self.s3_bucket):
            problems.append("S3_BUCKET must be set (no local-folder media in production)")
        if not self.public_base_url:
            problems.append("PUBLIC_BASE_URL must be the public address of the service")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def base_url(self) -> str:
        return (self.public_base_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def fetch_allows_private(self) -> bool:
        """Whether a task's input URL may name a private/loopback/link-local/multicast address."""
        if self.task_fetch_allow_private is not None:
            return self.task_fetch_allow_private
        return self.app_env != "production"

    @property
    def uses_s3(self) -> bool:
        return bool(self.s3_bucket)

    @property
    def media_dir(self) -> Path:
        return self.media_root if self.media_root is not None else self.data_dir / "media"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
