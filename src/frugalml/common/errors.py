"""Errors a user can act on: each says what was wrong and what to do; the CLI prints it in one line."""


class FrugalError(Exception):
    """Base class of every error frugalml raises on purpose (the CLI exits 2 on these)."""


class InvalidInputError(FrugalError, ValueError):
    """Bad input: wrong shape or dtype, NaN where none is allowed, an unknown option."""


class DataNotFoundError(FrugalError, FileNotFoundError):
    """A data set or file is missing; the message names where it was looked for and how to get it."""


class CorruptFileError(FrugalError):
    """A file is truncated, has a bad checksum, a wrong magic number or an unsupported version."""


class PeerUnavailableError(FrugalError, ImportError):
    """An optional library (a peer, a backend) is not installed or cannot run here."""


class ServiceUnavailableError(FrugalError, ConnectionError):
    """A server or worker we depend on (Redis, a parameter server, a device) is dead or unreachable."""
