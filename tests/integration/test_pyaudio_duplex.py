"""PyAudioDuplex on a real PortAudio path, and its callback logic on a scripted PortAudio.

The ``audio_server`` tests play into PulseAudio's null sink and record its
monitor through ALSA's "pulse" device: a real duplex stream with real buffering.
The delay through it is bounded but varies by whole buffers from run to run, so
the tests assert bounds and find the tone by its onset (cross-correlating a pure
tone locks onto the wrong period after one glitch).

The rest drive the PortAudio callbacks by hand through ``pa_factory``, to cover
what a null sink cannot show: 32-bit codecs, status flags, garbage from the
driver, and the two-clock FIFO.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pytest

from hw.ports import (
    AudioDuplex,
    AudioError,
    DuplexCallback,
    DuplexFormat,
    PcmBlock,
    StreamTime,
)
from hw.pyaudio_duplex import PyAudioDuplex, list_devices

RATE_HZ = 48_000
BLOCK = 480
FMT = DuplexFormat(rate_hz=RATE_HZ, block_frames=BLOCK, in_channels=1, out_channels=1)
TIMEOUT_S = 15.0  # the null sink's monitor can take ~2 s before the first block


def wait_until(done: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # never spin: the audio thread needs the GIL
    return True


def silence(frames: int = BLOCK, channels: int = 1) -> PcmBlock:
    return np.zeros((frames, channels), dtype=np.int16)


def start_running(duplex: PyAudioDuplex, callback: DuplexCallback, attempts: int = 3) -> None:
    """Start, and start again when the stream dies before its first block.

    On a loaded machine ALSA's pulse plugin sometimes fails ``snd_pcm_delay``
    while its PulseAudio stream is still connecting; PortAudio then ends the
    stream ("ContinuePoll ... failed" on stderr) before any callback. That is
    this sound stack, not the adapter, and the daemon sees it as callbacks that
    never come (``active`` turns False).
    """
    before = duplex.callbacks
    for _ in range(attempts):
        duplex.start(callback)
        wait_until(lambda: duplex.callbacks > before or not duplex.active)
        if duplex.callbacks > before:
            return
        duplex.stop()
    pytest.fail(f"no audio block in {attempts} attempts; xruns {duplex.xruns}")


# -- against PulseAudio's null sink ----------------------------------------------------


@pytest.mark.audio_server
def test_list_devices_finds_pulse() -> None:
    pulse = [d for d in list_devices() if d.name == "pulse"]
    assert pulse, [d.name for d in list_devices()]
    assert pulse[0].max_input_channels >= 1 and pulse[0].max_output_channels >= 1
    assert pulse[0].host_api == "ALSA"


@dataclass
class Recording:
    captured: list[PcmBlock]
    times: list[StreamTime]
    latency_s: tuple[float, float]
    duplex: PyAudioDuplex


def record_tone(output_device: str | None, played: np.ndarray) -> Recording | None:
    """Play ``played`` and record the monitor; None when the sound stack ended the
    stream before the end (see ``start_running``: not the adapter's doing)."""
    captured: list[PcmBlock] = []
    times: list[StreamTime] = []

    def callback(mic: PcmBlock, when: StreamTime) -> PcmBlock:
        pos = len(captured) * BLOCK
        captured.append(mic)
        times.append(when)
        out = silence()
        chunk = played[pos : pos + BLOCK]
        out[: len(chunk), 0] = chunk
        return out

    duplex = PyAudioDuplex(FMT, "pulse", output_device)
    assert isinstance(duplex, AudioDuplex)
    try:
        start_running(duplex, callback)
        latency_s = duplex.latency_s
        finished = wait_until(lambda: len(captured) * BLOCK >= len(played) or not duplex.active)
        assert finished, "stream stalled while it still said it was active"
        duplex.stop()
    finally:
        duplex.close()
    if len(captured) * BLOCK < len(played):
        return None
    return Recording(captured, times, latency_s, duplex)


@pytest.mark.audio_server
@pytest.mark.parametrize(
    "output_device",
    [None, "default"],
    ids=["one-duplex-stream", "two-streams-through-the-fifo"],
)
def test_tone_played_comes_back_through_the_monitor(output_device: str | None) -> None:
    tone_start = int(0.3 * RATE_HZ)
    tone_frames = int(0.2 * RATE_HZ)
    played = np.zeros(int(1.5 * RATE_HZ), dtype=np.int16)
    t = np.arange(tone_frames) / RATE_HZ
    played[tone_start : tone_start + tone_frames] = np.round(
        0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)
    ).astype(np.int16)
    for _ in range(3):
        result = record_tone(output_device, played)
        if result is not None:
            break
    else:
        pytest.fail("the sound stack ended the stream three times in a row")
    captured, times, latency_s, duplex = (
        result.captured,
        result.times,
        result.latency_s,
        result.duplex,
    )

    mic = np.concatenate(captured)[:, 0].astype(np.float64) / 32768
    onset = np.flatnonzero(np.abs(mic) > 0.25)
    assert len(onset), "the tone never arrived"
    delay_ms = (onset[0] - tone_start) * 1000 / RATE_HZ
    print(f"loopback onset delay {delay_ms:.1f} ms ({output_device}), xruns {duplex.xruns}")
    assert 0 <= delay_ms < 250
    segment = mic[onset[0] + 2400 : onset[0] + 7200]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    freq_hz = np.argmax(spectrum) * RATE_HZ / len(segment)
    assert abs(freq_hz - 1000) <= 10

    assert duplex.callbacks >= len(played) // BLOCK
    assert duplex.errors == 0
    xruns = duplex.xruns
    assert all(type(getattr(xruns, f.name)) is int for f in fields(xruns))
    assert xruns.total >= 0
    assert all(0 < v < 1 for v in latency_s), latency_s
    assert all(w.current_s > 0 for w in times)


@pytest.mark.audio_server
def test_callback_exceptions_are_swallowed_and_counted() -> None:
    calls = 0
    raised = 0

    def callback(mic: PcmBlock, when: StreamTime) -> PcmBlock:
        nonlocal calls, raised
        calls += 1
        if calls % 3 == 0:
            raised += 1
            raise RuntimeError("a bug in the daemon")
        return silence()

    duplex = PyAudioDuplex(FMT, "pulse")
    try:
        start_running(duplex, callback)
        assert wait_until(lambda: calls >= 30), "the stream died after a raising callback"
        duplex.stop()
    finally:
        duplex.close()
    assert raised >= 10
    assert duplex.errors == raised
    assert duplex.callbacks == calls


@pytest.mark.audio_server
def test_wrong_output_shape_plays_silence_and_counts() -> None:
    loud = np.full((BLOCK, 2), 20_000, dtype=np.int16)  # two channels; the stream has one
    captured: list[PcmBlock] = []

    def callback(mic: PcmBlock, when: StreamTime) -> PcmBlock:
        captured.append(mic)
        return loud

    duplex = PyAudioDuplex(FMT, "pulse")
    try:
        start_running(duplex, callback)
        assert wait_until(lambda: len(captured) >= 60), "stream stalled"
        duplex.stop()
    finally:
        duplex.close()
    assert duplex.errors == len(captured)
    assert int(np.abs(np.concatenate(captured).astype(np.int32)).max()) < 1000


@pytest.mark.audio_server
def test_stop_then_start_again() -> None:
    calls = 0

    def callback(mic: PcmBlock, when: StreamTime) -> PcmBlock:
        nonlocal calls
        calls += 1
        return silence()

    duplex = PyAudioDuplex(FMT, "pulse")
    try:
        start_running(duplex, callback)
        assert wait_until(lambda: calls >= 5)
        duplex.stop()
        duplex.stop()
        assert not duplex.active
        stopped_at = calls
        start_running(duplex, callback)
        assert wait_until(lambda: calls >= stopped_at + 5), "no callbacks after a restart"
        assert duplex.active
    finally:
        duplex.close()
        duplex.close()


@pytest.mark.audio_server
def test_unknown_device_names_what_exists() -> None:
    duplex = PyAudioDuplex(FMT, "no-such-codec")
    with pytest.raises(AudioError) as error:
        duplex.start(lambda mic, when: silence())
    message = str(error.value)
    assert "'no-such-codec'" in message
    assert "input devices:" in message and "output devices:" in message
    assert "'pulse'" in message
    duplex.close()


# -- the callbacks, on a scripted PortAudio --------------------------------------------


class ScriptedStream:
    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.started = False
        self.closed = False

    def start_stream(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True

    def get_input_latency(self) -> float:
        return 0.01

    def get_output_latency(self) -> float:
        return 0.02

    def __call__(self, data: bytes | None, status: int = 0, frames: int = BLOCK) -> Any:
        times = {"input_buffer_adc_time": 1.0, "output_buffer_dac_time": 1.05, "current_time": 1.01}
        return self.kwargs["stream_callback"](data, frames, times, status)


class ScriptedPa:
    """PyAudio's device list and ``open``, with no sound system behind them."""

    def __init__(self, devices: list[tuple[str, int, int]], open_error: str | None = None):
        self.devices = devices
        self.open_error = open_error
        self.streams: list[ScriptedStream] = []
        self.terminated = False

    def get_host_api_count(self) -> int:
        return 1

    def get_host_api_info_by_index(self, index: int) -> dict[str, Any]:
        return {"name": "ALSA"}

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, index: int) -> dict[str, Any]:
        name, ins, outs = self.devices[index]
        return {
            "name": name,
            "maxInputChannels": ins,
            "maxOutputChannels": outs,
            "defaultSampleRate": 48000.0,
            "hostApi": 0,
        }

    def open(self, **kwargs: Any) -> ScriptedStream:
        if self.open_error:
            raise OSError(-9997, self.open_error)
        self.streams.append(ScriptedStream(kwargs))
        return self.streams[-1]

    def terminate(self) -> None:
        self.terminated = True


HAT = [("bcm2835 Headphones: - (hw:0,0)", 0, 8), ("seeed2micvoicec: - (hw:1,0)", 2, 2)]


def test_32_bit_samples_keep_their_top_16_bits() -> None:
    pa = ScriptedPa(HAT)
    fmt = DuplexFormat(RATE_HZ, BLOCK, in_channels=2, out_channels=2)
    duplex = PyAudioDuplex(fmt, "seeed2mic", sample_width_bits=32, pa_factory=lambda: pa)
    seen: list[PcmBlock] = []

    def echo(mic: PcmBlock, when: StreamTime) -> PcmBlock:
        seen.append(mic)
        return mic

    duplex.start(echo)
    (stream,) = pa.streams
    assert stream.kwargs["channels"] == 2 and stream.kwargs["input_device_index"] == 1
    top = np.arange(-BLOCK, BLOCK, dtype=np.int32).reshape(BLOCK, 2)
    raw = (top << 16) | 0x1234  # the low bits are below what int16 carries
    out, flag = stream(raw.astype("<i4").tobytes())
    assert flag == 0
    assert seen[0].dtype == np.int16 and np.array_equal(seen[0], top)
    assert np.array_equal(np.frombuffer(out, "<i4").reshape(BLOCK, 2), top << 16)
    duplex.close()
    assert stream.closed and pa.terminated


def test_status_flags_are_counted() -> None:
    pa = ScriptedPa(HAT)
    duplex = PyAudioDuplex(FMT, "seeed2mic", pa_factory=lambda: pa)
    duplex.start(lambda mic, when: silence())
    stream = pa.streams[0]
    for status in (0x01, 0x02, 0x02, 0x04, 0x08, 0x10, 0x01 | 0x04):
        stream(bytes(BLOCK * 2), status)
    assert duplex.errors == 0
    xruns = duplex.xruns
    assert (xruns.input_underflows, xruns.input_overflows) == (2, 2)
    assert (xruns.output_underflows, xruns.output_overflows, xruns.priming_output) == (2, 1, 1)
    assert xruns.total == 7
    duplex.close()


def test_mono_output_reaches_every_channel_of_a_stereo_duplex_stream() -> None:
    pa = ScriptedPa(HAT)
    fmt = DuplexFormat(RATE_HZ, BLOCK, in_channels=2, out_channels=1)
    duplex = PyAudioDuplex(fmt, "seeed2mic", pa_factory=lambda: pa)
    duplex.start(lambda mic, when: np.full((BLOCK, 1), 7, dtype=np.int16))
    out, _ = pa.streams[0](bytes(BLOCK * 2 * 2))
    assert np.array_equal(np.frombuffer(out, "<i2"), np.full(BLOCK * 2, 7))
    duplex.close()


def test_garbage_from_the_driver_never_raises() -> None:
    pa = ScriptedPa(HAT)
    duplex = PyAudioDuplex(FMT, "seeed2mic", pa_factory=lambda: pa)
    duplex.start(lambda mic, when: silence())
    out, flag = pa.streams[0](b"\x01\x02\x03")  # not a whole block
    assert (out, flag) == (bytes(BLOCK * 2), 0)
    out, flag = pa.streams[0](None)
    assert flag == 0 and duplex.errors == 2
    duplex.close()


def test_open_failure_carries_portaudio_text_and_releases_portaudio() -> None:
    pa = ScriptedPa(HAT, open_error="Invalid sample rate")
    duplex = PyAudioDuplex(FMT, "seeed2mic", pa_factory=lambda: pa)
    with pytest.raises(AudioError, match="Invalid sample rate"):
        duplex.start(lambda mic, when: silence())
    assert pa.terminated


def test_too_few_channels_is_reported() -> None:
    fmt = DuplexFormat(RATE_HZ, BLOCK, in_channels=4, out_channels=2)
    duplex = PyAudioDuplex(fmt, "seeed2mic", pa_factory=lambda: ScriptedPa(HAT))
    with pytest.raises(AudioError, match=r">= 4 input channels.*seeed2micvoicec"):
        duplex.start(lambda mic, when: silence())


def test_two_devices_cross_clocks_through_a_bounded_fifo() -> None:
    pa = ScriptedPa(HAT)
    fmt = DuplexFormat(RATE_HZ, BLOCK, in_channels=2, out_channels=1)
    duplex = PyAudioDuplex(fmt, "seeed2mic", "Headphones", pa_factory=lambda: pa)
    counter = iter(range(1, 1000))
    stamps: list[StreamTime] = []

    def numbered(mic: PcmBlock, when: StreamTime) -> PcmBlock:
        stamps.append(when)
        return np.full((BLOCK, 1), next(counter), dtype=np.int16)

    duplex.start(numbered)
    capture, playback = pa.streams
    assert capture.kwargs["input"] and not capture.kwargs.get("output")
    assert playback.kwargs["output_device_index"] == 0 and playback.kwargs["channels"] == 1
    mic_bytes = bytes(BLOCK * 2 * 2)

    def play() -> int:
        out, flag = playback(None)
        assert flag == 0
        return int(np.frombuffer(out, "<i2")[0])

    assert play() == 0 and duplex.xruns.output_underflows == 0  # not started yet: no xrun
    assert capture(mic_bytes) == (None, 0)
    assert play() == 0  # filling up to two blocks first
    capture(mic_bytes)
    assert [play(), play()] == [1, 2]
    assert play() == 0 and duplex.xruns.output_underflows == 1  # ran dry
    for _ in range(10):  # the capture clock runs ahead: the oldest blocks go
        capture(mic_bytes)
    assert duplex.xruns.output_overflows == 2
    assert [play() for _ in range(8)] == list(range(5, 13))
    assert stamps[-1].input_adc_s == 1.0 and stamps[-1].output_dac_s > stamps[-1].current_s
    duplex.stop()
    assert capture.closed and playback.closed
