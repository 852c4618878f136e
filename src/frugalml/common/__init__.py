"""The thin layer the systems share: errors, validation, data paths, files, timing, reports."""

from frugalml.common.errors import (
    CorruptFileError,
    DataNotFoundError,
    FrugalError,
    InvalidInputError,
    PeerUnavailableError,
    ServiceUnavailableError,
)

__all__ = [
    "CorruptFileError",
    "DataNotFoundError",
    "FrugalError",
    "InvalidInputError",
    "PeerUnavailableError",
    "ServiceUnavailableError",
]
