"""The deployment files against the architecture's contract: cfn-lint on the SAM template, then what the
template must wire (handlers, Function URLs, timeouts, worker dispatch, schedule, bucket, settings), and the
self-hosting docker-compose file. No AWS calls, no Docker: files only."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

# PyYAML is not a direct dependency: it comes with cfn-lint (the dev extra), which this module needs anyway.
import yaml
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import cfn_yaml

from boothbridge.settings import MAX_T_SYNC_SEC, Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
COMPOSE = ROOT / "infra" / "docker-compose.yml"

# The longest T_SYNC_RESPONSE the settings accept; ingest must outlive it.
MAX_T_SYNC = MAX_T_SYNC_SEC
# CloudFront's most for an origin's response timeout: 60 s without a quota increase, 120 s with one.
CLOUDFRONT_READ_DEFAULT_MAX, CLOUDFRONT_READ_MAX = 60, 120
# Lambda refuses these in a function's environment (the runtime sets them).
RESERVED_ENV = {
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
}
# ArtMancer's endpoints (seed 002) live at its own paths under /api, in the machine-client function.
ARTMANCER_ROUTES = {"/api/generate*", "/api/smart-mask*", "/api/image-utils/*"}
HANDLERS = {
    "functions.ingest.app.handler",
    "functions.admin.app.handler",
    "functions.api_v1.app.handler",
    "functions.webhook.app.handler",
    "functions.worker.handler.handler",
    "functions.cleanup.handler.handler",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return loaded


def functions_of(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each AWS::Serverless::Function's properties with the Globals merged in the way SAM merges them
    (maps merge, the function's value wins; everything else is replaced)."""
    globals_ = template.get("Globals", {}).get("Function", {})
    out = {}
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        props = dict(globals_)
        for key, value in res.get("Properties", {}).items():
            if isinstance(value, Mapping) and isinstance(props.get(key), Mapping):
                props[key] = {**props[key], **value}
            else:
                props[key] = value
        props["Environment"] = {
            "Variables": {
                **globals_.get("Environment", {}).get("Variables", {}),
                **res.get("Properties", {}).get("Environment", {}).get("Variables", {}),
            }
        }
        out[name] = props
    return out


def handler_of(props: Mapping[str, Any]) -> str:
    """A zip function's Handler, or an image function's (its ImageConfig command)."""
    if props.get("PackageType") == "Image":
        (command,) = props["ImageConfig"]["Command"]
        return str(command)
    return str(props["Handler"])


def zip_functions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: props for name, props in functions_of(template).items() if props.get("PackageType") != "Image"}


def by_handler(template: Mapping[str, Any], handler: str) -> tuple[str, dict[str, Any]]:
    matches = [(name, props) for name, props in functions_of(template).items() if handler_of(props) == handler]
    assert len(matches) == 1, f"exactly one function must have handler {handler}"
    return matches[0]


def env_of(props: Mapping[str, Any]) -> dict[str, Any]:
    return dict(props["Environment"]["Variables"])


def test_cfn_lint_reports_nothing() -> None:
    # Errors and warnings alike: the template has no warning that needs explaining away. Linted for the
    # default region of the settings (AWS_REGION=eu-central-1) and for us-east-1.
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["eu-central-1", "us-east-1"]))
    assert not matches, "\n".join(f"{m.rule.id} {m.rule.severity} line {m.linenumber}: {m.message}" for m in matches)


def test_every_handler_exists_and_is_importable(template: dict[str, Any]) -> None:
    handlers = {handler_of(props) for props in functions_of(template).values()}
    assert handlers == HANDLERS
    for handler in handlers:
        module_name, _, attribute = handler.rpartition(".")
        assert (ROOT / (module_name.replace(".", "/") + ".py")).is_file(), handler
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attribute)), handler


def test_functions_run_on_the_common_layer_with_sane_limits(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    zipped = zip_functions(template)
    assert len(zipped) == len(HANDLERS) - 1, "all but the worker are zip functions"
    for name, props in functions_of(template).items():
        if name in zipped:
            assert re.fullmatch(r"python3\.1[12]", props["Runtime"]), name
            assert {"Ref": "CommonLayer"} in props["Layers"], name
            assert props["CodeUri"] == "../build/functions/", name
        assert props["Architectures"] in (["arm64"], ["x86_64"]), name
        assert 128 <= props["MemorySize"] <= 10240, name
        assert 1 <= props["Timeout"] <= 900, name
        vpc = props["VpcConfig"]
        assert vpc == {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}}, name
    layer = resources["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"]


def test_the_worker_is_a_container_image_built_by_sam(template: dict[str, Any]) -> None:
    """The worker ships as an image (its vision packages exceed a zip function's 250 MB): no runtime, handler,
    layer or code path of its own; SAM builds infra/worker/Dockerfile from the repository root, and the image's
    command is the worker's handler."""
    name, worker = by_handler(template, "functions.worker.handler.handler")
    assert worker["PackageType"] == "Image"
    for absent in ("Runtime", "Handler", "Layers", "CodeUri"):
        assert absent not in worker, absent
    assert worker["MemorySize"] >= 2048, "vision on a 24 MP photo: memory for the arrays, and CPU share with it"
    metadata = template["Resources"][name]["Metadata"]
    context = (TEMPLATE.parent / metadata["DockerContext"]).resolve()
    assert context == ROOT
    dockerfile = context / metadata["Dockerfile"]
    assert dockerfile == ROOT / "infra" / "worker" / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    (base,) = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    # AWS's Lambda base image for the zip functions' Python (CPython and Amazon Linux alike).
    runtimes = {props["Runtime"] for props in zip_functions(template).values()}
    assert runtimes == {"python3.12"}
    assert base == "public.ecr.aws/lambda/python:3.12"
    (cmd,) = re.findall(r"^CMD\s+(.+)$", text, re.MULTILINE)
    assert yaml.safe_load(cmd) == worker["ImageConfig"]["Command"]
    assert metadata["DockerTag"]


def test_ingest_sits_behind_a_function_url_and_outlives_t_sync(template: dict[str, Any]) -> None:
    name, ingest = by_handler(template, "functions.ingest.app.handler")
    assert ingest["FunctionUrlConfig"] == {"AuthType": "NONE", "InvokeMode": "BUFFERED"}
    assert ingest["Timeout"] > MAX_T_SYNC
    assert "Events" not in ingest, "no API Gateway in front of ingest: it stops at 29-30 s"
    # The CloudFront front door must not cut ingest short either.
    distribution = template["Resources"]["FrontDoor"]["Properties"]["DistributionConfig"]
    (ingest_route,) = [b for b in distribution["CacheBehaviors"] if b["PathPattern"] == "/ingest/*"]
    (origin,) = [o for o in distribution["Origins"] if o["Id"] == ingest_route["TargetOriginId"]]
    assert f"{name}Url" in repr(origin["DomainName"])
    # A parameter: deployable without a quota increase by default, above the default T_SYNC_RESPONSE with room
    # for a cold start; raised (with the quota) up to CloudFront's most for longer waits.
    read_timeout = origin["CustomOriginConfig"]["OriginReadTimeout"]
    param = template["Parameters"][read_timeout["Ref"]]
    assert param["Default"] <= CLOUDFRONT_READ_DEFAULT_MAX
    assert param["Default"] >= Settings.model_fields["t_sync_response"].default + 10
    assert param["MaxValue"] == CLOUDFRONT_READ_MAX
    assert "POST" in ingest_route["AllowedMethods"]


def test_admin_and_webhook_have_function_urls_and_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for handler, output in (
        ("functions.ingest.app.handler", "IngestUrl"),
        ("functions.admin.app.handler", "AdminUrl"),
        ("functions.api_v1.app.handler", "ApiV1Url"),
        ("functions.webhook.app.handler", "WebhookUrl"),
    ):
        name, props = by_handler(template, handler)
        assert props["FunctionUrlConfig"]["AuthType"] == "NONE"
        assert props["FunctionUrlConfig"]["InvokeMode"] == "BUFFERED"
        assert outputs[output]["Value"] == {"Fn::GetAtt": [f"{name}Url", "FunctionUrl"]}


def test_ingest_and_cleanup_dispatch_to_the_worker_lambda(template: dict[str, Any]) -> None:
    worker_name, worker = by_handler(template, "functions.worker.handler.handler")
    assert "FunctionUrlConfig" not in worker, "the worker is invoked, never reached over HTTP"
    assert worker["EventInvokeConfig"]["MaximumRetryAttempts"] in (0, 1, 2)
    for handler in (
        "functions.ingest.app.handler",
        "functions.api_v1.app.handler",
        "functions.cleanup.handler.handler",
    ):
        _, props = by_handler(template, handler)
        env = env_of(props)
        assert env["WORKER_DISPATCH"] == "lambda", handler
        assert env["WORKER_FUNCTION_NAME"] == {"Ref": worker_name}, handler
        statements = [s for p in props["Policies"] if isinstance(p, Mapping) for s in p.get("Statement", [])]
        invoke = [s for s in statements if s["Action"] == "lambda:InvokeFunction"]
        assert len(invoke) == 1, handler
        assert invoke[0]["Effect"] == "Allow", handler
        assert invoke[0]["Resource"] == {"Fn::GetAtt": [worker_name, "Arn"]}, handler


def test_cleanup_runs_on_a_schedule(template: dict[str, Any]) -> None:
    _, cleanup = by_handler(template, "functions.cleanup.handler.handler")
    schedules = [e["Properties"]["Schedule"] for e in cleanup["Events"].values() if e["Type"] == "Schedule"]
    assert schedules == ["rate(1 minute)"]
    assert cleanup["Timeout"] >= 60


def test_media_bucket_is_private_encrypted_with_lifecycle_safety_nets(template: dict[str, Any]) -> None:
    buckets = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::S3::Bucket"}
    assert sorted(buckets) == ["MediaBucket", "WebBucket"]
    for bucket in buckets.values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    props = buckets["MediaBucket"]["Properties"]
    rules = props["LifecycleConfiguration"]["Rules"]
    expiring = {r["Prefix"] for r in rules if r["Status"] == "Enabled" and "ExpirationInDays" in r}
    assert {"source/", "public/"} <= expiring
    for function in functions_of(template).values():
        assert env_of(function)["S3_BUCKET"] == {"Ref": "MediaBucket"}


def test_the_front_door_serves_the_web_ui_from_its_bucket_and_the_api_from_the_admin_function(
    template: dict[str, Any],
) -> None:
    distribution = template["Resources"]["FrontDoor"]["Properties"]["DistributionConfig"]
    origins = {o["Id"]: o for o in distribution["Origins"]}
    assert origins["web"]["DomainName"] == {"Fn::GetAtt": ["WebBucket", "RegionalDomainName"]}
    assert origins["web"]["OriginAccessControlId"] == {"Fn::GetAtt": ["WebOriginAccess", "Id"]}
    assert distribution["DefaultRootObject"] == "index.html"
    assert distribution["DefaultCacheBehavior"]["TargetOriginId"] == "web"
    assert distribution["DefaultCacheBehavior"]["AllowedMethods"] == ["GET", "HEAD"]
    routes = {b["PathPattern"]: b["TargetOriginId"] for b in distribution["CacheBehaviors"]}
    # CloudFront takes the first pattern that matches: the machine-client API's (AIGE's /api/v1 and ArtMancer's
    # paths, seed 002) must come before the operator's.
    for machine_route in ARTMANCER_ROUTES | {"/api/v1/*"}:
        assert list(routes).index(machine_route) < list(routes).index("/api/*"), machine_route
    assert routes == {
        "/api/v1/*": "api_v1",
        "/api/generate*": "api_v1",
        "/api/smart-mask*": "api_v1",
        "/api/image-utils/*": "api_v1",
        "/api/*": "admin",
        "/public/*": "admin",
        "/health": "admin",
        "/metrics": "admin",
        "/ingest/*": "ingest",
        "/webhooks/*": "webhook",
    }
    # Only this distribution may read the UI's bucket; nobody else, and nothing may write through it.
    (statement,) = template["Resources"]["WebBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Action"] == "s3:GetObject"
    assert "FrontDoor" in statement["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]


def test_sign_ins_through_the_front_door_are_counted_per_viewer(template: dict[str, Any]) -> None:
    """CloudFront adds the origin secret to the admin origin's requests and forwards CloudFront-Viewer-Address
    (AllViewerExceptHostHeader includes the CloudFront headers); the admin function knows the same secret."""
    distribution = template["Resources"]["FrontDoor"]["Properties"]["DistributionConfig"]
    admin_origin = next(o for o in distribution["Origins"] if o["Id"] == "admin")
    assert admin_origin["OriginCustomHeaders"] == [
        {"HeaderName": "X-Origin-Verify", "HeaderValue": {"Ref": "OriginVerifySecret"}}
    ]
    api = next(b for b in distribution["CacheBehaviors"] if b["PathPattern"] == "/api/*")
    assert api["OriginRequestPolicyId"] == "b689b0a8-53d0-40ab-baf2-68738e2966ac"  # AllViewerExceptHostHeader
    secret = template["Parameters"]["OriginVerifySecret"]
    assert secret["NoEcho"] is True and secret["MinLength"] >= 32
    admin_env = template["Resources"]["AdminFunction"]["Properties"]["Environment"]["Variables"]
    assert admin_env["ORIGIN_VERIFY_SECRET"] == {"Ref": "OriginVerifySecret"}


def test_credentials_come_from_their_secret_and_ship_with_no_code(template: dict[str, Any]) -> None:
    """Every function reads the credentials secret named by the parameter, may read only that secret, and no
    layer carries a credentials file."""
    policy = template["Resources"]["CredentialsSecretReadPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"] == [
        {
            "Sid": "RuntimeCredentials",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Ref": "CredentialsSecretArn"},
        }
    ]
    for name, function in functions_of(template).items():
        assert env_of(function)["CREDENTIALS_SECRET_ARN"] == {"Ref": "CredentialsSecretArn"}, name
        assert "CREDENTIALS_PATH" not in env_of(function), name
        assert {"Ref": "CredentialsSecretReadPolicy"} in function["Policies"], name
    for name, function in zip_functions(template).items():
        assert function["Layers"] == [{"Ref": "CommonLayer"}], name
    layers = [n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::LayerVersion"]
    assert layers == ["CommonLayer"]


def test_s3_permissions_stay_on_the_media_bucket(template: dict[str, Any]) -> None:
    policy = template["Resources"]["MediaObjectAccessPolicy"]["Properties"]["PolicyDocument"]
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(a.startswith("s3:") and "*" not in a for a in actions), actions
        assert "MediaBucket.Arn" in repr(statement["Resource"]) or statement["Resource"] == {
            "Fn::GetAtt": ["MediaBucket", "Arn"]
        }
    for name, function in functions_of(template).items():
        assert {"Ref": "MediaObjectAccessPolicy"} in function["Policies"], name
        for policy_item in function["Policies"]:
            assert not (isinstance(policy_item, Mapping) and "S3CrudPolicy" in policy_item), name


def test_environment_is_production_settings(template: dict[str, Any]) -> None:
    """Every variable is a Settings field, none is reserved by Lambda, and the values (intrinsics stand in
    as placeholder strings) pass the production validation."""
    fields = set(Settings.model_fields)
    placeholder = "deploy-time-value"
    for name, function in functions_of(template).items():
        env = env_of(function)
        assert not RESERVED_ENV & set(env), name
        assert {k.lower() for k in env} <= fields, f"{name}: unknown variables {set(env) - {f.upper() for f in fields}}"
        assert env["APP_ENV"] == "production", name
        for required in ("DATABASE_URL", "PUBLIC_BASE_URL", "S3_BUCKET", "CREDENTIALS_SECRET_ARN", "PROVIDERS_CONFIG"):
            assert required in env, f"{name}: {required}"
        assert "secretsmanager" in repr(env["DATABASE_URL"]), "DATABASE_URL comes from Secrets Manager"
        values = {k.lower(): (v if isinstance(v, str) else placeholder) for k, v in env.items()}
        Settings(_env_file=None, **values)


def compose_documented_env() -> dict[str, str]:
    """`#   NAME=value` lines in the compose file's comments: the app's settings for this shape."""
    pairs = re.findall(r"^#\s+([A-Z][A-Z0-9_]+)=(\S+)", COMPOSE.read_text(encoding="utf-8"), re.MULTILINE)
    return dict(pairs)


def test_docker_compose_defines_postgres_and_minio() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    assert re.match(r"(docker\.io/)?(library/)?postgres:1[67]\b", services["postgres"]["image"])
    assert "minio/minio" in services["minio"]["image"]
    setup = [s for s in services.values() if "minio/mc" in s["image"]]
    assert len(setup) == 1, "one one-shot minio/mc service creates the bucket"
    assert setup[0]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("postgres", "minio"):
        assert "healthcheck" in services[name], name


def test_docker_compose_documents_the_app_settings() -> None:
    env = compose_documented_env()
    for required in ("DATABASE_URL", "S3_ENDPOINT_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
        assert required in env, required
    assert {k.lower() for k in env} <= set(Settings.model_fields), env
    assert env["DATABASE_URL"].startswith("postgresql://")
    Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
