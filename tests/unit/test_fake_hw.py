"""The shipped fakes behave like the hardware they stand for."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from hw.fake import FakeDuplex, read_wav_mono, write_wav
from hw.panel_fake import FakeButtons, FakeLeds
from hw.ports import OFF, AudioDuplex, ButtonEvent, DuplexFormat, Leds, Rgb, StreamTime

FMT = DuplexFormat(rate_hz=16000, block_frames=320, in_channels=2, out_channels=2)


def echo_back(mic: np.ndarray, _t: StreamTime) -> np.ndarray:
    return np.repeat(mic[:, :1], 2, axis=1)


def test_fakes_implement_the_ports() -> None:
    assert isinstance(FakeDuplex(FMT), AudioDuplex)
    assert isinstance(FakeLeds(3), Leds)


def test_fed_audio_reaches_mic_channels_at_its_time() -> None:
    duplex = FakeDuplex(FMT, mic_channels=(0, 1))
    seen: list[np.ndarray] = []
    duplex.set_callback(lambda mic, t: (seen.append(mic.copy()), np.zeros((320, 2), np.int16))[1])
    burst = np.full(160, 1000, np.int16)
    duplex.feed(burst, at_s=0.05)  # frame 800: block 2, offset 160
    duplex.step(4)
    mic = np.concatenate(seen)
    assert np.flatnonzero(mic[:, 0]).tolist() == list(range(800, 960))
    assert np.array_equal(mic[:, 0], mic[:, 1])
    assert duplex.time_s == pytest.approx(4 * 0.02)


def test_dac_records_every_sample_and_saves_wav(tmp_path: Path) -> None:
    duplex = FakeDuplex(FMT)
    counter = iter(range(1, 100))
    duplex.set_callback(lambda mic, t: np.full((320, 2), next(counter), np.int16))
    duplex.step(3)
    played = duplex.played()
    assert played.shape == (960, 2)
    assert played[0, 0] == 1 and played[-1, 1] == 3
    duplex.save_output(tmp_path / "out.wav")
    back = read_wav_mono(tmp_path / "out.wav", 16000)
    assert np.array_equal(back, played[:, 0])


def test_wrong_output_shape_plays_silence() -> None:
    duplex = FakeDuplex(FMT)
    duplex.set_callback(lambda mic, t: np.ones((10, 2), np.int16))
    duplex.step()
    assert not duplex.played().any()


def test_loopback_channel_carries_what_was_played() -> None:
    fmt = DuplexFormat(16000, 160, 8, 8)
    duplex = FakeDuplex(fmt, mic_channels=range(6), loopback_channels=(6, 7))
    seen: list[np.ndarray] = []

    def cb(mic: np.ndarray, _t: StreamTime) -> np.ndarray:
        seen.append(mic.copy())
        return np.full((160, 8), 500 * len(seen), np.int16)

    duplex.set_callback(cb)
    duplex.step(3)
    assert not seen[0][:, 6].any()
    assert (seen[1][:, 6] == 500).all() and (seen[2][:, 7] == 1000).all()
    assert not seen[2][:, :6].any()


def test_acoustic_echo_is_delayed_and_scaled() -> None:
    duplex = FakeDuplex(FMT, echo_gain=0.5, echo_delay_ms=5, output_latency_blocks=1)
    seen: list[np.ndarray] = []
    out = np.zeros((320, 2), np.int16)
    out[0] = 10000  # an impulse at the start of the first block

    def cb(mic: np.ndarray, _t: StreamTime) -> np.ndarray:
        seen.append(mic[:, 0].copy())
        return out if len(seen) == 1 else np.zeros((320, 2), np.int16)

    duplex.set_callback(cb)
    duplex.step(3)
    mic = np.concatenate(seen)
    # impulse at frame 0, output latency 320 frames, echo delay 80 frames
    assert np.flatnonzero(mic).tolist() == [400]
    assert mic[400] == 5000


def test_real_time_thread_calls_back_from_another_thread() -> None:
    duplex = FakeDuplex(FMT, speed=20.0)
    threads: set[str] = set()
    enough = threading.Event()

    def cb(mic: np.ndarray, _t: StreamTime) -> np.ndarray:
        threads.add(threading.current_thread().name)
        if duplex.callbacks >= 5:
            enough.set()
        return echo_back(mic, _t)

    duplex.start(cb)
    assert enough.wait(10)
    duplex.stop()
    assert threads == {"fake-duplex"}


def test_unplugged_device_cannot_start() -> None:
    duplex = FakeDuplex(FMT)
    duplex.unplug()
    with pytest.raises(Exception, match="unplugged"):
        duplex.start(echo_back)
    duplex.plug()
    duplex.set_callback(echo_back)
    duplex.step()


def test_read_wav_resamples_and_mixes(tmp_path: Path) -> None:
    stereo = np.zeros((4800, 2), np.int16)
    stereo[:, 0] = 1000
    stereo[:, 1] = 3000
    write_wav(tmp_path / "s.wav", stereo, 48000)
    mono = read_wav_mono(tmp_path / "s.wav", 16000)
    assert abs(len(mono) - 1600) <= 1
    assert abs(int(np.median(mono)) - 2000) <= 2


def test_unreadable_wav_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(Exception, match=r"bad\.wav"):
        read_wav_mono(bad, 16000)


def test_fake_leds_record_changes_with_time() -> None:
    now = [0.0]
    leds = FakeLeds(3, clock=lambda: now[0])
    red = Rgb(255, 0, 0)
    leds.show([red] * 3)
    now[0] = 1.0
    leds.show([red] * 3)  # no change: not recorded
    now[0] = 2.0
    leds.show([OFF] * 3)
    assert [(f.at_s, f.pixels[0]) for f in leds.frames] == [(0.0, red), (2.0, OFF)]
    with pytest.raises(ValueError, match="3 pixels"):
        leds.show([red])


def test_fake_buttons_press_and_release() -> None:
    buttons = FakeButtons(["talk"], clock=lambda: 5.0)
    events: list[ButtonEvent] = []
    buttons.set_handler(events.append)
    buttons.press("talk", hold_s=1.2)
    assert events == [ButtonEvent("talk", True, 5.0), ButtonEvent("talk", False, 6.2)]
    with pytest.raises(ValueError, match="no button 'mute'"):
        buttons.press("mute")
