"""SessionService: the local stack's development token issuer (see recsys.auth.devissuer).

It signs a token for whichever user is asked for: that is what makes it a development tool.
Where AUTH_DEV_ISSUER is off (compose, production) every call answers UNIMPLEMENTED.
"""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from profile_svc.store import ProfileStore
from recsys.auth.devissuer import DevIssuer
from recsys.errors import Unimplemented
from recsys.v1 import session_service_pb2, session_service_pb2_grpc


class SessionServicer(session_service_pb2_grpc.SessionServiceServicer):
    """Signs user tokens; with user_id 0, creates the user first."""

    def __init__(self, store: ProfileStore, issuer: DevIssuer | None) -> None:
        self.store = store
        self.issuer = issuer

    async def CreateSession(
        self, request: session_service_pb2.CreateSessionRequest, context: grpc.aio.ServicerContext
    ) -> session_service_pb2.CreateSessionResponse:
        if self.issuer is None:
            raise Unimplemented(
                "the development token issuer is off (AUTH_DEV_ISSUER); "
                "get a token from the identity provider"
            )
        user_id = request.user_id or await self.store.create_user(request.display_name.strip() or None)
        token, expires = self.issuer.user_token(user_id)
        return session_service_pb2.CreateSessionResponse(
            access_token=token, token_type="Bearer", user_id=user_id, expires_at=Timestamp(seconds=expires)
        )
