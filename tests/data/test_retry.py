"""textvae.data.retry: which faults are retried, for how long, and the one error at the end."""

from __future__ import annotations

import pytest

from textvae.data.retry import (
    DEFAULT_RETRY_SECONDS,
    MAX_DELAY_S,
    MIN_ATTEMPT_S,
    RETRY_ENV_VAR,
    call_with_retry,
    is_transient,
    retry_seconds,
)
from textvae.errors import SettingError, StoreCorruptError, StoreUnavailableError


class FakeTime:
    """A clock that advances only when slept on, and by each attempt's ``cost``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def _call(attempt, fake: FakeTime, seconds: float) -> str:
    return call_with_retry(
        attempt, url="s3://b/x", seconds=seconds, clock=fake.clock, sleep=fake.sleep
    )


def _failing(fake: FakeTime, errors: list[BaseException], cost: float = 0.01):
    timeouts: list[float | None] = []

    def attempt(timeout: float | None) -> str:
        timeouts.append(timeout)
        fake.now += cost
        if errors:
            raise errors.pop(0)
        return "read"

    return attempt, timeouts


def test_transient_faults_are_retried_until_they_pass():
    fake = FakeTime()
    errors = [ConnectionRefusedError(111, "refused"), TimeoutError(), OSError(5, "503 SlowDown")]
    attempt, timeouts = _failing(fake, errors)
    result = _call(attempt, fake, 30)
    assert result == "read" and len(timeouts) == 4
    # Backoff doubles (jittered within [d/2, d]) from 0.1 s; each attempt gets what is left.
    for k, pause in enumerate(fake.sleeps):
        assert 0.1 * 2**k / 2 <= pause <= 0.1 * 2**k
    assert all(t is not None and t <= 30 for t in timeouts)
    assert timeouts[0] == 30


@pytest.mark.parametrize(
    "error",
    [
        PermissionError("denied"),
        FileNotFoundError("no such key"),
        ValueError("checksum"),
        StoreCorruptError("damaged"),
    ],
    ids=["denied", "missing", "decode", "textvae-error"],
)
def test_other_errors_are_not_retried(error):
    fake = FakeTime()
    attempt, timeouts = _failing(fake, [error])
    with pytest.raises(type(error)):
        _call(attempt, fake, 30)
    assert len(timeouts) == 1 and fake.sleeps == []


@pytest.mark.parametrize("seconds", [0.0, 1.5, 12.0, 60.0])
def test_gives_up_within_the_retry_time_naming_url_and_cause(seconds):
    fake = FakeTime()
    attempt, timeouts = _failing(fake, [ConnectionRefusedError(111, "refused")] * 1000)
    with pytest.raises(StoreUnavailableError) as exc:
        _call(attempt, fake, seconds)
    # Retried up to the deadline, less at most the last attempt's minimum; never past it.
    assert seconds - MIN_ATTEMPT_S - 0.02 <= fake.now <= seconds + 0.01
    assert timeouts[0] == (seconds or None)
    assert max(fake.sleeps, default=0) <= MAX_DELAY_S
    message = str(exc.value)
    assert message.startswith("cannot read s3://b/x: ConnectionRefusedError: [Errno 111] refused")
    assert f"after {len(timeouts)} attempts" in message and RETRY_ENV_VAR in message
    assert isinstance(exc.value.__cause__, ConnectionRefusedError)


def test_a_timed_out_attempt_is_named():
    fake = FakeTime()
    attempt, _ = _failing(fake, [TimeoutError()] * 100, cost=0.5)
    with pytest.raises(StoreUnavailableError, match="TimeoutError: no answer in time"):
        _call(attempt, fake, 2)


def test_botocore_connection_errors_are_transient():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, ReadTimeoutError

    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert not is_transient(NoCredentialsError())


def test_retry_seconds_setting(monkeypatch):
    monkeypatch.delenv(RETRY_ENV_VAR, raising=False)
    assert retry_seconds() == DEFAULT_RETRY_SECONDS
    assert retry_seconds(2) == 2.0
    monkeypatch.setenv(RETRY_ENV_VAR, "7.5")
    assert retry_seconds() == 7.5 and retry_seconds(1) == 1.0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(RETRY_ENV_VAR, bad)
        with pytest.raises(SettingError, match=f"{RETRY_ENV_VAR} must be a number of seconds"):
            retry_seconds()
    for bad in (-1, True, "5"):
        with pytest.raises(ValueError, match="`retry_seconds` must be a number >= 0"):
            retry_seconds(bad)
