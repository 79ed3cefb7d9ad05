"""Operations, no authentication: /healthz (503 when the sequencer is not running) and
/metrics (Prometheus text format). Mounted at the root, not under /v1, where probes
and scrapers look for them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import MetricsDep, NodeDep
from api.schemas import Health

router = APIRouter(tags=["ops"])


@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness of the node and its sequencer",
    responses={503: {"model": Health, "description": "the sequencer is not running"}},
)
def healthz(node: NodeDep, response: Response) -> dict[str, Any]:
    health = node.health()
    if health["status"] != "ok":
        response.status_code = 503
    return health


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(node: NodeDep, metrics: MetricsDep) -> Response:
    return Response(metrics.render(node.health()), media_type=CONTENT_TYPE_LATEST)
