"""What every recsys server interceptor shares: each unary method's handler is wrapped once.

gRPC asks an interceptor for the handler of every call; building a wrapper per call would cost
on every request. A subclass says how to wrap a handler (`wrap`); the wrapper is kept per
method and reused while the server hands out the same handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc


# grpcio ships no type stubs, so its classes are Any to mypy.
class UnaryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        # method -> (the handler as registered, its wrapped version)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(handler, details.method)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError
