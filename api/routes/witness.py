"""C2SP tlog-witness (https://c2sp.org/tlog-witness): POST /v1/witness/add-checkpoint.

A follower node is a witness of the sequencer's log: it cosigns each checkpoint only
after checking a consistency proof from the last one it cosigned (node.witnessing).
No bearer token: the log's signature on the checkpoint is the authentication, as in
C2SP. The body is the C2SP request (``old <size>``, proof lines, an empty line, the
signed checkpoint) in any content type; the answers are C2SP's: 200 with the
cosignature line (text/plain), 409 ``text/x.tlog.size`` for a stale old size, and
problem+json otherwise (a split view is a 409 problem titled "Split view").

The node says whether it is a witness by setting ``app.state.witness`` to a
``node.witnessing.WitnessContext``; without one this path answers 404. The path is
left out of the OpenAPI document: its contract is the C2SP specification, and the
document lists exactly the paths of DESIGN section 4.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.problems import PayloadTooLarge, ProblemKind, problem_response
from node.witnessing import ADD_CHECKPOINT_PATH, MAX_REQUEST_BYTES, WitnessContext

router = APIRouter(tags=["witness"])

NOT_A_WITNESS = ProblemKind(404, "not-a-witness", "Not a witness")


@router.post(ADD_CHECKPOINT_PATH, include_in_schema=False)
async def add_checkpoint(request: Request) -> Response:
    context = getattr(request.app.state, "witness", None)
    if not isinstance(context, WitnessContext):
        return problem_response(request, NOT_A_WITNESS, "this node is not a witness")
    body = await read_bounded(request)
    if body is None:
        return problem_response(
            request, PayloadTooLarge.kind, f"the body may be at most {MAX_REQUEST_BYTES} bytes"
        )
    status, content, media_type = await run_in_threadpool(context.handle, body)
    # The content type exactly as given: C2SP clients compare "text/x.tlog.size" verbatim.
    return Response(content, status_code=status, headers={"Content-Type": media_type})


async def read_bounded(request: Request) -> bytes | None:
    """The request body, or None as soon as it passes MAX_REQUEST_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return None
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            return None
    return bytes(data)
