"""Keeps the audio stream running: notices when it dies or stalls, and reopens it.

A stream can end without any callback saying so: a USB array is pulled, the
HAT's driver resets, ALSA's pulse plugin fails while it connects. PortAudio
then simply stops calling back. The supervisor looks every check period at two
things: whether the stream still reports itself active (adapters that can tell
have an ``active`` property) and whether callbacks keep arriving. When either
fails it closes the stream and reopens it with capped, jittered backoff, so a
device that is gone for a while is not hammered and one that comes back is
found within seconds. The same loop covers a device missing at boot.

Time only enters through the injected ``sleep`` (and jitter through ``rand``),
so tests run the whole cycle on virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from hw.ports import AudioDuplex, AudioError, DuplexCallback, PcmBlock, StreamTime

log = logging.getLogger(__name__)

CHECK_PERIOD_S = 1.0
STALL_PERIODS = 3
"""Periods without a callback before a stream that says it is active counts as stalled.
Three seconds also covers a sound server that takes ~2 s to deliver its first block."""
REOPEN_BASE_S = 0.5
REOPEN_CAP_S = 10.0

Sleep = Callable[[float], Awaitable[None]]


def reopen_delay_s(
    attempt: int,
    rand: Callable[[], float],
    *,
    base_s: float = REOPEN_BASE_S,
    cap_s: float = REOPEN_CAP_S,
) -> float:
    """Delay before reopen ``attempt`` (0-based): base doubling to cap, times 0.5..1.

    The jitter keeps several speakers on one power strip from retrying in step.
    """
    step_s = min(cap_s, base_s * float(2 ** min(attempt, 30)))
    return step_s * (0.5 + 0.5 * rand())


class AudioSupervisor:
    """Runs one duplex stream for as long as ``run`` runs, reopening it after faults.

    ``reopen_attempts`` counts starts tried after a fault (failed or not),
    ``reopens`` those that started the stream again.
    """

    def __init__(
        self,
        *,
        check_period_s: float = CHECK_PERIOD_S,
        stall_periods: int = STALL_PERIODS,
        reopen_base_s: float = REOPEN_BASE_S,
        reopen_cap_s: float = REOPEN_CAP_S,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if check_period_s <= 0 or stall_periods < 1:
            raise ValueError("check_period_s must be positive and stall_periods at least 1")
        self._period_s = check_period_s
        self._stall_periods = stall_periods
        self._base_s, self._cap_s = reopen_base_s, reopen_cap_s
        self._sleep = sleep
        self._rand = rand
        self._blocks = 0  # written by the audio thread only, read by the loop
        self.reopen_attempts = 0
        self.reopens = 0
        self.faulted = False
        """True from a fault until audio flows again."""

    @property
    def blocks(self) -> int:
        """Audio callbacks seen since ``run`` began, across reopens."""
        return self._blocks

    async def run(
        self,
        duplex: AudioDuplex,
        callback: DuplexCallback,
        *,
        on_fault: Callable[[str], None],
        on_recovered: Callable[[], None],
    ) -> None:
        """Start ``duplex`` and keep it running until cancelled; stops it on the way out.

        ``on_fault(reason)`` is called once when audio goes down (including a
        device missing at start), ``on_recovered()`` once when blocks flow again
        after that. Both are called on the event loop. Only ``AudioError`` from
        ``start`` is retried; any other exception is a bug and propagates.
        """

        def counted(mic: PcmBlock, when: StreamTime) -> PcmBlock:
            self._blocks += 1
            return callback(mic, when)

        attempt = 0
        try:
            problem = self._start(duplex, counted)
            while True:
                if problem is None:
                    problem = await self._watch(duplex)
                    if problem is None:  # blocks flow again after a fault
                        self.faulted, attempt = False, 0
                        log.info("audio is flowing again")
                        on_recovered()
                        continue
                    self._close(duplex)
                if not self.faulted:
                    self.faulted = True
                    log.error("audio: %s; reopening the stream", problem)
                    on_fault(problem)
                delay_s = reopen_delay_s(
                    attempt, self._rand, base_s=self._base_s, cap_s=self._cap_s
                )
                await self._sleep(delay_s)
                attempt += 1
                self.reopen_attempts += 1
                retry_problem = self._start(duplex, counted)
                if retry_problem is None:
                    self.reopens += 1
                    log.info("audio stream reopened (attempt %d)", attempt)
                elif retry_problem != problem:  # say it when the reason changes, not every try
                    log.warning("audio: %s", retry_problem)
                problem = retry_problem
        finally:
            self._stop(duplex)

    async def _watch(self, duplex: AudioDuplex) -> str | None:
        """Wait for a fault and return its reason, or None once blocks flow after a fault."""
        last = self._blocks
        idle_periods = 0
        while True:
            await self._sleep(self._period_s)
            now = self._blocks
            if not getattr(duplex, "active", True):
                return "the audio stream stopped (device unplugged or driver reset?)"
            if now > last:
                idle_periods = 0
                if self.faulted:
                    return None
            else:
                idle_periods += 1
                if idle_periods >= self._stall_periods:
                    stalled_s = idle_periods * self._period_s
                    return f"no audio blocks for {stalled_s:g} s (the stream stalled)"
            last = now

    @staticmethod
    def _start(duplex: AudioDuplex, callback: DuplexCallback) -> str | None:
        """Start the stream; the reason it cannot be opened, or None when it started."""
        try:
            duplex.start(callback)
        except AudioError as exc:
            return f"cannot open audio: {exc}"
        return None

    @staticmethod
    def _close(duplex: AudioDuplex) -> None:
        """Close rather than stop: PortAudio re-scans devices only when opened afresh."""
        try:
            duplex.close()
        except Exception:  # a dead stream may fail to close; the reopen must still happen
            log.exception("closing the failed audio stream failed")

    @staticmethod
    def _stop(duplex: AudioDuplex) -> None:
        try:
            duplex.stop()
        except Exception:
            log.exception("stopping the audio stream failed")


__all__ = ["AudioSupervisor", "reopen_delay_s"]
