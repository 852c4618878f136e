"""Emulating an edge device's asymmetric links: link-rate strings and token-bucket traffic shaping."""

from __future__ import annotations

import re
import threading
import time

from frugalml.common.errors import InvalidInputError

_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)(bit/s|bit|bps|b/s|b)?\s*$", re.I)
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)(i?b)?\s*$", re.I)
_PREFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BINARY = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_rate(text: str | None) -> float:
    """Bytes per second from ``"100mbit"``, ``"20Mbit/s"``, ``"10mbps"`` (bits), ``"5MB"``, ``"1e6"`` (bytes).

    ``None``, ``""``, ``"0"`` and ``"unlimited"`` mean no limit and return 0.

    Examples
    --------
    >>> parse_rate("100mbit")
    12500000.0
    >>> parse_rate("2MB/s")
    2000000.0
    """
    if text is None or text.strip().lower() in ("", "0", "unlimited", "inf", "none"):
        return 0.0
    match = _RATE.match(text)
    if not match:
        raise InvalidInputError(
            f"cannot read link rate {text!r}; write it like 100mbit, 20Mbit/s, 512kbit or 5MB (bytes/s)"
        )
    value = float(match.group(1)) * _PREFIX[match.group(2).lower()]
    in_bits = (match.group(3) or "").lower() in ("bit", "bit/s", "bps")
    return value / 8 if in_bits else value


def parse_size(text: str) -> int:
    """Bytes from ``"512MB"``, ``"2GiB"``, ``"64k"`` or a plain integer.

    Examples
    --------
    >>> parse_size("2KiB")
    2048
    """
    match = _SIZE.match(text)
    if not match:
        raise InvalidInputError(f"cannot read memory size {text!r}; write it like 512MB, 2GiB or 65536")
    prefix, unit = match.group(2).lower(), (match.group(3) or "").lower()
    scale = _BINARY[prefix] if unit == "ib" else _PREFIX[prefix]
    return int(float(match.group(1)) * scale)


class TokenBucket:
    """A thread-safe token bucket: ``consume(n)`` sleeps until ``n`` bytes may pass at ``rate``.

    A rate of 0 disables shaping. ``burst`` bytes may pass at once after an idle period.
    """

    def __init__(self, rate: float, burst: float | None = None):
        if rate < 0:
            raise InvalidInputError(f"rate must be non-negative, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 50, 16384.0)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def consume(self, nbytes: int) -> float:
        """Take ``nbytes`` tokens, sleeping as long as the link would take; returns seconds slept."""
        if self.rate <= 0 or nbytes <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= nbytes
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return wait
