"""Bounded retries of object-storage reads: transient faults are retried, then one clear error.

A read of a remote store that meets a transient fault (connection refused or reset, a timeout,
a 5xx answer) is tried again with exponential backoff (0.1 s doubling to 5 s, jittered) until
``retry_seconds`` after the read began; then it raises :class:`~textvae.errors.
StoreUnavailableError` naming the URL and the last cause. Each attempt is itself cut off at that
deadline, so a server that accepts connections but never answers cannot stall a read longer.

Why textvae owns the deadline rather than configuring s3fs/aiobotocore (measured here against a
local moto server): their retries are counted, not timed, and they multiply. botocore's default
("legacy" mode) makes 5 attempts with random exponential backoff, so a stopped server failed a
read after 7-10 s with ``EndpointConnectionError`` (not an ``OSError``); s3fs retries read
timeouts 5 times more on top (a class attribute, not a storage option), so a server that accepts
and never answers failed a read after 57 s at ``read_timeout=1`` and would take minutes at s3fs's
default of 15 s. Their retries still run, inside each attempt, for the faults they know.

``retry_seconds`` comes from the caller, else ``$TEXTVAE_RETRY_SECONDS``, else 60.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from textvae.errors import SettingError, StoreUnavailableError, TextVAEError

__all__ = [
    "DEFAULT_RETRY_SECONDS",
    "RETRY_ENV_VAR",
    "call_with_retry",
    "is_transient",
    "retry_seconds",
    "run_with_timeout",
]

T = TypeVar("T")

#: Environment variable giving the retry time of remote reads, in seconds.
RETRY_ENV_VAR = "TEXTVAE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 60.0
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
#: The last attempt gets at least this long; with less left, the error is raised instead (a
#: shorter attempt would only report its own time-out instead of the real cause).
MIN_ATTEMPT_S = 0.2
# Errors that say "this will not get better by waiting": not transient.
_PERMANENT = (
    TextVAEError,
    PermissionError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
)


def retry_seconds(value: float | None = None) -> float:
    """The retry time: ``value``, else ``$TEXTVAE_RETRY_SECONDS``, else 60 s.

    Raises
    ------
    ValueError
        A negative or non-numeric ``value`` (0 means: one attempt, no retry).
    SettingError
        The same in ``$TEXTVAE_RETRY_SECONDS``.
    """
    if value is None:
        text = os.environ.get(RETRY_ENV_VAR)
        if not text:
            return DEFAULT_RETRY_SECONDS
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:
            raise SettingError(
                f"${RETRY_ENV_VAR} must be a number of seconds >= 0. Received: {text!r}"
            )
        return seconds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(
            f"`retry_seconds` must be a number >= 0. Received: retry_seconds={value!r}"
        )
    return float(value)


def _transient_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [TimeoutError, ConnectionError, OSError]
    try:  # botocore's connection and HTTP errors are not OSErrors
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        types += [BotoConnectionError, HTTPClientError]
    except ImportError:
        pass
    try:
        from aiohttp import ClientError

        types.append(ClientError)
    except ImportError:
        pass
    return tuple(types)


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` from object storage may go away by waiting: connection refused or reset,
    timeouts, server errors (s3fs turns a 5xx into an ``OSError``). Missing keys, denied access
    and textvae's own errors are not."""
    return isinstance(err, _transient_types()) and not isinstance(err, _PERMANENT)


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if not text and isinstance(err, TimeoutError):
        text = "no answer in time"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def call_with_retry(
    attempt: Callable[[float | None], T],
    *,
    url: str,
    seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``attempt(timeout)`` until it returns, retrying transient faults until ``seconds`` after
    the first call; ``timeout`` is what is left of that time (the attempt should give up then).

    Raises
    ------
    StoreUnavailableError
        Still failing (or no answer) when the time is up: names ``url``, the cause and the time.
    """
    start = clock()
    deadline = start + seconds
    delay = FIRST_DELAY_S
    attempts = 0
    while True:
        attempts += 1
        try:
            return attempt(max(deadline - clock(), 0.001) if seconds > 0 else None)
        except Exception as err:
            if not is_transient(err):
                raise
            cause = err
        left = deadline - clock()
        pause = min(random.uniform(delay / 2, delay), left - MIN_ATTEMPT_S)
        if pause < 0:  # no time left for a fair attempt: report what the last one met
            waited = clock() - start
            raise StoreUnavailableError(
                f"cannot read {url}: {_describe(cause)} (still failing after {attempts} "
                f"attempts in {waited:.1f} s): check the network and the endpoint "
                f"(AWS_ENDPOINT_URL or --storage-option endpoint_url=...); ${RETRY_ENV_VAR} sets "
                "how long to retry"
            ) from cause
        sleep(pause)
        delay = min(delay * 2, MAX_DELAY_S)


def run_with_timeout(make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None) -> T:
    """Run the coroutine ``make()`` on zarr's event loop, cancelled after ``timeout`` seconds
    (``TimeoutError``); ``None``: no limit."""
    from zarr.core.sync import sync

    if timeout is None:
        return sync(make())
    return sync(asyncio.wait_for(make(), timeout))
