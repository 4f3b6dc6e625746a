"""The provider catalog as the operator UI shows it: each provider, its limits and its operations' settings."""

from fastapi import APIRouter

from boothbridge.http.openapi import AUTH, errors
from functions.admin.deps import CatalogDep, ContainerDep, OperatorDep
from functions.admin.schemas import IngestLimits, OperationInfo, ProviderCatalog, ProviderInfo

router = APIRouter(tags=["providers"])


@router.get("/api/providers", response_model=ProviderCatalog, responses=errors(*AUTH))
async def providers(_: OperatorDep, catalog: CatalogDep, c: ContainerDep) -> ProviderCatalog:
    """The provider catalog with each operation's settings schema."""
    out = []
    for p in catalog.providers.values():
        operations = [catalog.operations[op_id] for op_id in p.operations]
        out.append(
            ProviderInfo(
                id=p.id,
                name=p.title,
                description=p.description,
                available=p.id in c.providers,  # the adapters this deployment built
                currency=catalog.currency_of(p.id),
                ingest=IngestLimits(
                    max_parallel_jobs=p.ingest.max_parallel_jobs,
                    timeout_sec=p.ingest.timeout_sec,
                    allowed_mime=list(p.ingest.allowed_mime),
                    max_file_size_mb=p.ingest.max_file_size_mb,
                ),
                operations=[
                    OperationInfo(
                        id=op.id,
                        name=op.title,
                        description=op.description,
                        required_settings=list(op.required_settings),
                        settings_schema=op.settings_schema,
                        produces=op.produces(p.id),
                    )
                    for op in operations
                ],
            )
        )
    return ProviderCatalog(providers=out)
