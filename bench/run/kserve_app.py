"""KServe's REST application and gRPC server, assembled for ``bench serve`` with only what
serving one built model needs.

KServe's own ``ModelServer`` listens on every address (``0.0.0.0`` and ``[::]`` are fixed in its
code), serves the model repository extension (``POST /v2/repository/models/NAME/load`` and
``/unload`` and their gRPC twins: any client could unload the model and leave a server that
says ready and answers nothing), logs a line per request (a timing middleware, a gRPC
interceptor) and a traceback per refused request. So the parts are put together here: KServe's
data plane and its v1 and v2 route handlers on a FastAPI application, and KServe's gRPC
servicer, on the address ``bench serve`` was given; the repository routes left out and its RPCs
refused (UNIMPLEMENTED); no per-request log line; a client's mistake (``InvalidInput``) answered
400 / INVALID_ARGUMENT with its reason and not logged; a server fault logged once and answered
500 / INTERNAL; the request size limit (``bench.serve.body_limit``, gRPC's receive limit) in
front of everything. KServe, FastAPI and grpcio are imported inside functions only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bench.serve.body_limit import BodyLimit
from bench.serve.listen import ListenError, address

log = logging.getLogger("bench.serve")
REPOSITORY = "/repository/"  # the path segment of every model repository route
GRACE_S = 2.0  # in-flight gRPC calls get this long to finish at shutdown


def rest_app(dataplane: Any, max_body_bytes: int, hint: str) -> Any:
    """The ASGI application: KServe's v1 and v2 routes without the repository ones."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve import errors
    from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
    from kserve.protocol.rest.v2_endpoints import register_v2_endpoints

    app = FastAPI(title="bench serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_api_route("/", dataplane.live)  # KServe's liveness route, as its probes expect
    # KServe's functions build one router each and hand it to ``include_router``: caught here,
    # each router is included without its repository routes.
    routers = _Routers()
    register_v1_endpoints(routers, dataplane, None)
    register_v2_endpoints(routers, dataplane, None)
    for router in routers.caught:
        router.routes = [r for r in router.routes if REPOSITORY not in r.path]
        app.include_router(router)

    def answer(status: int, quiet: bool) -> Any:
        async def handle(_: Any, exc: Exception) -> Any:
            if not quiet:  # a server fault: once, with where it happened
                log.error("%s: %s", type(exc).__name__, exc, exc_info=exc)
            return JSONResponse(status_code=status, content={"error": str(exc)[:2000]})

        return handle

    for kind, status, quiet in (
        (errors.InvalidInput, 400, True),
        (errors.ModelNotFound, 404, True),
        (errors.ModelNotReady, 503, True),
        (errors.ServerNotReady, 503, True),
        (errors.ServerNotLive, 503, True),
        (errors.UnsupportedProtocol, 501, True),
        (NotImplementedError, 501, True),
        (errors.InferenceError, 500, False),
        (Exception, 500, False),
    ):
        app.add_exception_handler(kind, answer(status, quiet))

    async def not_a_request(_: Any, exc: RequestValidationError) -> Any:
        # FastAPI's own answer is 422 with pydantic's full error list; a client's malformed
        # body is a 400 like every other client mistake here, with its first problem.
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        reason = f"not a v2 inference request: {where or 'body'}: {first.get('msg', '')}"
        return JSONResponse(status_code=400, content={"error": reason[:2000]})

    app.add_exception_handler(RequestValidationError, not_a_request)
    return BodyLimit(app, max_body_bytes, hint)


class _Routers:
    """Stands in for the application while KServe's functions register their routes."""

    def __init__(self) -> None:
        self.caught: list[Any] = []

    def include_router(self, router: Any) -> None:
        self.caught.append(router)


def grpc_server(dataplane: Any, host: str, port: int, max_message_bytes: int) -> Any:
    """KServe's v2 gRPC service on ``host:port``, bound (ListenError if it cannot be), not
    started; the repository RPCs answer UNIMPLEMENTED."""
    import grpc
    from grpc import aio
    from kserve.errors import InvalidInput, ModelNotFound
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
    from kserve.protocol.grpc.servicer import InferenceServicer

    refused = (
        "bench serve serves the one model it built at start: loading and unloading models "
        "(the model repository extension) is off"
    )

    class Servicer(InferenceServicer):  # type: ignore[misc]
        async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
            raise NotImplementedError(refused)

        async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
            raise NotImplementedError(refused)

    quiet = {
        InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
        ModelNotFound: grpc.StatusCode.NOT_FOUND,
        NotImplementedError: grpc.StatusCode.UNIMPLEMENTED,
    }

    class Statuses(ExceptionToStatusInterceptor):  # type: ignore[misc]
        async def handle_exception(
            self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str
        ) -> None:
            # KServe's logs a traceback for each of these; a client's mistake, or a method
            # that is off, is the client's to read, in the status.
            for kind, code in quiet.items():
                if isinstance(ex, kind):
                    await context.abort(code, str(ex)[:2000])
            await super().handle_exception(ex, request_or_iterator, context, method_name)

    server = aio.server(
        interceptors=(Statuses(),),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # Off, so that no other server can bind this port beside this one and take half
            # of its calls (grpcio turns it on by default on Linux).
            ("grpc.so_reuseport", 0),
        ],
    )
    grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        Servicer(dataplane, None), server
    )
    where = address(host, port)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError:  # grpcio raises where it cannot bind, or returns 0 in older versions
        bound = 0
    if bound != port:
        raise ListenError(f"--grpc-port {port}: cannot listen on {where} (in use since checked?)")
    return server


def loop_factory() -> Any:
    """uvloop's event loop where it is installed (KServe's 'auto' choice), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


async def serve_both(app: Any, sock: Any, grpc: Any, on_start: Any) -> None:
    """Serve REST on the bound socket ``sock`` and the bound gRPC server (None: REST only)
    until SIGINT or SIGTERM (uvicorn's handlers end its loop); ``on_start()`` once both
    accept."""
    import uvicorn

    config = uvicorn.Config(
        app, log_config=None, access_log=False, timeout_graceful_shutdown=int(GRACE_S),
        lifespan="off", server_header=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    if grpc is not None:
        await grpc.start()
    started = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started and not started.done():
        await asyncio.sleep(0.01)
    if server.started:
        on_start()
    try:
        await started
    finally:
        if grpc is not None:
            await grpc.stop(GRACE_S)
