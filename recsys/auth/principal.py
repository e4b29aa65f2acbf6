"""The verified caller of a request: who it is and what it may act for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Scopes a token may carry (space-separated in its `scope` claim, as in OAuth 2).
USER_SCOPE = "user"  # acts for the user named by `sub`
SERVICE_SCOPE = "service"  # another backend: may act for any user
ADMIN_SCOPE = "admin"  # changes the catalogue and the models
ANALYST_SCOPE = "analyst"  # reads the analytics (how the recommender performs)

SERVICE_SUBJECT_PREFIX = "service:"
ADMIN_SUBJECT_PREFIX = "admin:"
ANALYST_SUBJECT_PREFIX = "analyst:"


@dataclass(frozen=True)
class Principal:
    """A verified token's subject and scopes; `user_id` is set for user tokens only."""

    subject: str
    scopes: frozenset[str]
    user_id: int | None = None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        subject = str(claims.get("sub", ""))
        raw = claims.get("scope", "")
        scopes = frozenset(raw.split() if isinstance(raw, str) else (str(s) for s in raw or ()))
        user_id = None
        if USER_SCOPE in scopes and subject.isdigit():
            user_id = int(subject)
        return cls(subject=subject, scopes=scopes, user_id=user_id)

    @property
    def is_service(self) -> bool:
        return SERVICE_SCOPE in self.scopes

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes

    @property
    def is_analyst(self) -> bool:
        """May read the analytics: an analyst, or an admin (who may do everything an analyst may)."""
        return ANALYST_SCOPE in self.scopes or self.is_admin

    def may_act_for(self, user_id: int) -> bool:
        """A service acts for anyone; a user only for itself."""
        return self.is_service or (self.user_id is not None and self.user_id == user_id)
