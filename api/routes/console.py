"""The regulator's console: one read-only page at ``/``, its assets under ``/console/``,
and ``GET /v1/me`` (who the bearer token belongs to, so the page shows only the panels
the caller may read).

The page is static (api/static: HTML, vanilla JS, CSS; no build step, no CDN) and holds
no secret: the caller pastes its bearer token, the page keeps it in sessionStorage and
sends it as ``Authorization: Bearer`` on every request, the flag stream included (read
with fetch(), since EventSource cannot send headers). Every figure it shows comes from
the same API, with the same visibility: a bank's token shows its own loans and flags.

The page and its assets are left out of /openapi.json; ``/v1/me`` is too, until
tests/unit/api/test_openapi.py lists it among the documented paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.deps import CallerDep
from api.schemas import READ_ERRORS, Me
from node.errors import NotFound

router = APIRouter(tags=["console"])

STATIC = Path(__file__).resolve().parent.parent / "static"
ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "verify.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
}
PAGE_HEADERS = {
    # Same origin only: no CDN, no inline script, no framing; the token never leaves.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get(
    "/v1/me",
    response_model=Me,
    summary="The organisation and role the bearer token belongs to",
    responses=READ_ERRORS,
)
def me(caller: CallerDep) -> dict[str, Any]:
    return {"org": caller.org, "role": caller.role}


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(
        STATIC / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS
    )


@router.get("/console/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    """One of the page's own files, by name (nothing else under api/static is served)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound("console asset", name)
    return FileResponse(STATIC / name, media_type=media_type, headers=PAGE_HEADERS)
