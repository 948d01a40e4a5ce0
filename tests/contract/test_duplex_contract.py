"""One contract for every AudioDuplex: the shipped fake and PortAudio on a real sound server.

Both rigs hear their own output: the fake plays it back into the mic
(``echo_gain=1``), PulseAudio's null sink returns it on its monitor source. So
"silence was played" is checked the same way on both, by listening.

The PortAudio rig needs a PulseAudio server (``. scripts/pulse-null.sh``); it
skips without one, or fails when ``EDGEVOICE_REQUIRE_AUDIO_SERVER=1`` says the
run must have it. Waits are bounded by timeouts that only catch a hung test;
nothing here asserts how long anything took.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import numpy as np
import pytest

from hw.fake import FakeDuplex
from hw.ports import AudioDuplex, DuplexFormat, PcmBlock, StreamTime, XrunCounters
from hw.pyaudio_duplex import PyAudioDuplex
from tests.integration.conftest import require_audio_server

FMT = DuplexFormat(rate_hz=48_000, block_frames=480, in_channels=2, out_channels=1)
WAIT_S = 15.0  # a null sink's monitor can take ~2 s to deliver its first block
LOUD = 20_000
QUIET = 1_000

Respond = Callable[[int, PcmBlock], Any]


def silence(calls: int, mic: PcmBlock) -> PcmBlock:
    return np.zeros((FMT.block_frames, FMT.out_channels), np.int16)


def tone(calls: int, mic: PcmBlock) -> PcmBlock:
    n = np.arange(FMT.block_frames) + calls * FMT.block_frames
    wave = LOUD * np.sin(2 * np.pi * 1000 * n / FMT.rate_hz)
    return np.round(wave).astype(np.int16).reshape(-1, 1)


class Recorder:
    """The daemon's side of the stream: records every block and wakes the test."""

    def __init__(self, respond: Respond = silence) -> None:
        self.respond = respond
        self.calls = 0
        self.raised = 0
        self.mic: list[PcmBlock] = []
        self.times: list[StreamTime] = []
        self.threads: set[int] = set()
        self.peak = 0
        self.stop_returned = False
        self.calls_after_stop = 0
        self._changed = threading.Condition()

    def __call__(self, mic: PcmBlock, when: StreamTime) -> Any:
        if self.stop_returned:
            self.calls_after_stop += 1
        with self._changed:
            self.calls += 1
            calls = self.calls
            self.mic.append(mic.copy())
            self.times.append(when)
            self.threads.add(threading.get_ident())
            self.peak = max(self.peak, int(np.abs(mic.astype(np.int32)).max(initial=0)))
            self._changed.notify_all()
        try:
            return self.respond(calls, mic)
        except Exception:
            self.raised += 1
            raise

    def wait(self, done: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(done, timeout_s)

    def wait_calls(self, calls: int, timeout_s: float = WAIT_S) -> bool:
        return self.wait(lambda: self.calls >= calls, timeout_s)


def start_running(duplex: AudioDuplex, recorder: Recorder, attempts: int = 3) -> None:
    """Start, and start again when the stream ends before its first block."""
    for _ in range(attempts):

        def first_block(before: int = recorder.calls) -> bool:
            return recorder.calls > before

        duplex.start(recorder)
        if wait_while_active(duplex, recorder, first_block):
            return
        duplex.stop()
    pytest.fail(f"no audio block in {attempts} attempts; xruns {duplex.xruns}")


def wait_while_active(duplex: AudioDuplex, recorder: Recorder, done: Callable[[], bool]) -> bool:
    """Wait until ``done``; False as soon as the stream is no longer active."""
    for _ in range(int(WAIT_S / 0.1)):
        if recorder.wait(done, 0.1):
            return True
        if not getattr(duplex, "active", True):
            return False
    pytest.fail(f"stalled: {recorder.calls} blocks in {WAIT_S:g} s, yet still active")


def keep_running(
    duplex: AudioDuplex, recorder: Recorder, done: Callable[[], bool], host_restarts: int = 2
) -> None:
    """Run the stream until ``done``, restarting it if the host API ends it.

    ALSA's pulse plugin now and then fails a poll ("ContinuePoll ... failed",
    after "underrun occurred") and PortAudio ends the stream: that is the sound
    stack, which the daemon's supervisor answers by reopening, so the test does
    the same, a bounded number of times. An adapter whose callbacks ended the
    stream would need a restart per block and still fail here.
    """
    for _ in range(host_restarts + 1):
        if wait_while_active(duplex, recorder, done):
            return
        duplex.stop()
        start_running(duplex, recorder)
    pytest.fail(f"the stream ended {host_restarts + 1} times; {recorder.calls} blocks in all")


def run_blocks(duplex: AudioDuplex, recorder: Recorder, calls: int) -> None:
    """Start the stream and run it for at least ``calls`` blocks in all."""
    start_running(duplex, recorder)
    keep_running(duplex, recorder, lambda: recorder.calls >= calls)


@pytest.fixture(params=["fake", pytest.param("pulse", marks=pytest.mark.audio_server)])
def duplex(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "fake":
        adapter: Any = FakeDuplex(FMT, mic_channels=(0, 1), echo_gain=1.0, speed=4.0)
    else:
        require_audio_server()
        adapter = PyAudioDuplex(FMT, "pulse")
    yield adapter
    adapter.close()


def test_it_is_an_audio_duplex_of_the_format_asked_for(duplex: Any) -> None:
    assert isinstance(duplex, AudioDuplex)
    assert duplex.format == FMT
    assert isinstance(duplex.xruns, XrunCounters)
    latency = duplex.latency_s
    assert len(latency) == 2 and all(isinstance(v, float) and v >= 0 for v in latency)


def test_the_callback_runs_on_another_thread_with_mic_blocks_and_stream_times(
    duplex: Any,
) -> None:
    recorder = Recorder()
    run_blocks(duplex, recorder, 10)
    duplex.stop()
    assert threading.get_ident() not in recorder.threads
    assert all(m.shape == (FMT.block_frames, FMT.in_channels) for m in recorder.mic)
    assert all(m.dtype == np.int16 for m in recorder.mic)
    assert all(t.output_dac_s >= t.input_adc_s for t in recorder.times), recorder.times[:3]
    assert duplex.callbacks == recorder.calls and duplex.errors == 0


def test_what_the_callback_returns_is_played(duplex: Any) -> None:
    """The control for the silence checks below: this rig does hear its output."""
    recorder = Recorder(tone)
    start_running(duplex, recorder)
    keep_running(duplex, recorder, lambda: recorder.peak > LOUD // 2)
    duplex.stop()


@pytest.mark.parametrize(
    "wrong",
    [
        np.full((FMT.block_frames, 2), LOUD, np.int16),  # too many channels
        np.full((FMT.block_frames // 2, 1), LOUD, np.int16),  # too few frames
        np.full((FMT.block_frames, 1), 0.6, np.float32),  # not int16
        None,
    ],
    ids=["channels", "frames", "dtype", "none"],
)
def test_a_malformed_block_plays_silence_and_the_stream_goes_on(duplex: Any, wrong: Any) -> None:
    recorder = Recorder(lambda calls, mic: wrong)
    run_blocks(duplex, recorder, 60)
    duplex.stop()
    assert duplex.errors == recorder.calls
    assert recorder.peak < QUIET


def test_an_exception_in_the_callback_plays_silence_and_the_stream_goes_on(duplex: Any) -> None:
    def every_third_raises(calls: int, mic: PcmBlock) -> PcmBlock:
        if calls % 3 == 0:
            raise RuntimeError("a bug in the daemon")
        return silence(calls, mic)

    recorder = Recorder(every_third_raises)
    run_blocks(duplex, recorder, 30)
    duplex.stop()
    assert recorder.raised >= 10
    assert duplex.errors == recorder.raised
    assert duplex.callbacks == recorder.calls


def test_stop_is_idempotent_and_no_callback_comes_after_it(duplex: Any) -> None:
    recorder = Recorder()
    run_blocks(duplex, recorder, 5)
    duplex.stop()
    recorder.stop_returned = True
    duplex.stop()
    calls = recorder.calls
    assert not recorder.wait_calls(calls + 1, timeout_s=0.2)  # several blocks' worth
    assert recorder.calls_after_stop == 0
    assert getattr(duplex, "active", False) is False


@pytest.mark.parametrize("release", ["stop", "close"])
def test_start_works_again_after_stop_or_close(duplex: Any, release: str) -> None:
    recorder = Recorder()
    run_blocks(duplex, recorder, 5)
    getattr(duplex, release)()
    stopped_at = recorder.calls
    run_blocks(duplex, recorder, stopped_at + 5)
    duplex.stop()


def test_xruns_are_counters_of_whole_events(duplex: Any) -> None:
    recorder = Recorder()
    run_blocks(duplex, recorder, 20)
    duplex.stop()
    xruns = duplex.xruns
    assert isinstance(xruns, XrunCounters)
    assert all(type(getattr(xruns, f.name)) is int for f in fields(xruns))
    assert all(getattr(xruns, f.name) >= 0 for f in fields(xruns))
    assert xruns.total >= 0
