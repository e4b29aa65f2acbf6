"""ProfileService handlers: ask the store, shape the answer (the requests' rules are in the protos)."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from profile_svc.erasure import UserEraser
from profile_svc.store import ProfileRow, ProfileStore
from recsys.domain.events import EVENT_TYPE_VALUES
from recsys.domain.movies import movie_from_row
from recsys.errors import NotFound
from recsys.v1 import event_service_pb2, profile_service_pb2, profile_service_pb2_grpc

# How many recent interactions a profile shows when the request says nothing.
DEFAULT_RECENT = 20


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def profile_message(row: ProfileRow) -> profile_service_pb2.Profile:
    """The proto of a store row."""
    profile = profile_service_pb2.Profile(
        user_id=row.user_id,
        has_preference_vector=row.has_vector,
        interaction_count=row.interaction_count,
        rating_count=row.rating_count,
        model_version=row.model_version,
        top_genres=row.top_genres,
        updated_at=timestamp(row.updated_at),
    )
    for r in row.recent:
        profile.recent_interactions.append(
            profile_service_pb2.Interaction(
                event_id=r["event_id"],
                movie=movie_from_row(r),
                type=EVENT_TYPE_VALUES.get(r["event_type"], event_service_pb2.EVENT_TYPE_UNSPECIFIED),
                rating=r["rating"] or 0.0,
                occurred_at=timestamp(r["occurred_at"]),
            )
        )
    return profile


class ProfileServicer(profile_service_pb2_grpc.ProfileServiceServicer):
    """The owner of user_profiles; the Recommender asks it for preference vectors."""

    def __init__(self, store: ProfileStore, eraser: UserEraser) -> None:
        self.store = store
        self.eraser = eraser

    async def CreateUser(
        self, request: profile_service_pb2.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> profile_service_pb2.CreateUserResponse:
        user_id = await self.store.create_user(request.display_name.strip() or None)
        return profile_service_pb2.CreateUserResponse(user_id=user_id)

    async def GetProfile(
        self, request: profile_service_pb2.GetProfileRequest, context: grpc.aio.ServicerContext
    ) -> profile_service_pb2.GetProfileResponse:
        recent_limit = request.recent_limit if request.HasField("recent_limit") else DEFAULT_RECENT
        row = await self.store.profile(request.user_id, recent_limit)
        if row is None:
            raise NotFound(f"user {request.user_id} not found")
        return profile_service_pb2.GetProfileResponse(profile=profile_message(row))

    async def DeleteUser(
        self, request: profile_service_pb2.DeleteUserRequest, context: grpc.aio.ServicerContext
    ) -> profile_service_pb2.DeleteUserResponse:
        erased = await self.eraser.erase(request.user_id)
        return profile_service_pb2.DeleteUserResponse(
            user_id=request.user_id,
            deleted_at=timestamp(erased.deleted_at),
            rows_deleted=sum(erased.rows.values()),
        )

    async def GetPreferenceVector(
        self, request: profile_service_pb2.GetPreferenceVectorRequest, context: grpc.aio.ServicerContext
    ) -> profile_service_pb2.GetPreferenceVectorResponse:
        found = await self.store.preference_vector(request.user_id)
        if found is None:
            return profile_service_pb2.GetPreferenceVectorResponse()
        return profile_service_pb2.GetPreferenceVectorResponse(
            vector=found.vector.tolist(),
            model_version=found.model_version,
            updated_at=timestamp(found.updated_at),
        )
