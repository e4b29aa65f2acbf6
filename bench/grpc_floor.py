"""The gRPC floor for bench/serving.py: a bare grpc.aio server that answers every
GetRecommendations with the same recorded response bytes (no interceptor, no Redis, no log).

    python bench/grpc_floor.py --port 50099 --response hit.bin

Served through an Envoy rendered from the gateway's own template, it measures what grpc.aio,
Envoy and the load tool cost on this box before any recsys code runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import grpc

from recsys.grpcserver import SERVER_OPTIONS, run

SERVICE = "recsys.v1.RecommenderService"


async def serve(port: int, response: bytes) -> None:
    async def get_recommendations(request: bytes, context: Any) -> bytes:
        return response

    # No (de)serializers: the request arrives and the response leaves as raw bytes.
    handler = grpc.unary_unary_rpc_method_handler(get_recommendations)
    # The services' transport settings (recsys.grpcserver.serve).
    server = grpc.aio.server(options=SERVER_OPTIONS)
    methods = {"GetRecommendations": handler}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, methods)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response", type=Path, required=True, help="serialized response bytes")
    args = parser.parse_args()
    # The same event loop as the services.
    run(serve(args.port, args.response.read_bytes()))


if __name__ == "__main__":
    main()
