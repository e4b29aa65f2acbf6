"""Embeddings: their size, and pgvector column values as numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

# Embeddings live in vector(64) columns (movies.embedding, user_profiles.preference_vector);
# a model of smaller rank is zero-padded.
EMBEDDING_DIM = 64


def to_array(value: Any, dtype: npt.DTypeLike = np.float32) -> np.ndarray[Any, Any]:
    """A non-null vector value as numpy: pgvector's adapters (asyncpg, psycopg) return a Vector
    object or a numpy array depending on their version."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=dtype)


def as_array(value: Any, dtype: npt.DTypeLike = np.float32) -> np.ndarray[Any, Any] | None:
    """A nullable vector value as numpy, None for NULL."""
    return None if value is None else to_array(value, dtype)
