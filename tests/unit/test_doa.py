"""Direction of arrival: synthetic plane waves and simulated rooms on the boards' own
mic geometries, then the daemon on fake hardware pointing its LED ring at a talker.

The plane waves are exact fractional delays (a phase shift per mic); the rooms come
from pyroomacoustics (image sources, reverberation), so the estimate is checked on
echoes and walls as well as on clean delays.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyroomacoustics as pra
import pytest
import soxr

from device.app import Daemon
from device.audio.bridge import AudioBridge
from device.audio.doa import ArrayGeometry, DoaEstimator, RingDirection, ring_deg
from device.config import load_config, with_overrides
from device.realtime.sim_voice import espeak_pcm
from device.state import Event, State
from hw.board_parse import parse_board
from hw.board_profile import BoardError
from hw.boards import load_board
from hw.factory import HardwareRequest, build_fake
from hw.fake import FakeDuplex
from hw.ports import Rgb

RATE_HZ = 16000
BLOCK = 160  # 10 ms, as the capture path delivers
TOLERANCE_DEG = 20.0


def off_deg(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def babble(seconds: float, seed: int) -> npt.NDArray[np.float64]:
    """Speech-like noise: a falling spectrum, switched on and off at a syllable rate."""
    rng = np.random.default_rng(seed)
    n = round(RATE_HZ * seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE_HZ)
    spectrum /= np.maximum(freqs, 150.0) ** 0.5
    sound = np.fft.irfft(spectrum, n)
    syllables = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * np.arange(n) / RATE_HZ)
    sound *= syllables
    return 8000.0 * sound / float(np.std(sound))


def plane_wave(
    sound: npt.NDArray[np.float64], positions_mm: Any, azimuth_deg: float
) -> npt.NDArray[np.float64]:
    """What each mic hears of a far talker at ``azimuth_deg``: exact fractional delays."""
    toward = np.array([math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))])
    lead_s = np.asarray(positions_mm) / 1000.0 @ toward / 343.0
    spectrum = np.fft.rfft(sound)
    freqs = np.fft.rfftfreq(len(sound), 1 / RATE_HZ)
    return np.stack(
        [np.fft.irfft(spectrum * np.exp(2j * np.pi * freqs * lead), len(sound)) for lead in lead_s],
        axis=1,
    )


def estimate(
    estimator: DoaEstimator, mics: npt.NDArray[np.float64], *, speech: bool = True
) -> float | None:
    for start in range(0, len(mics), BLOCK):
        estimator.push(mics[start : start + BLOCK], speech=speech)
    return estimator.direction_deg


def geometry(board: str) -> ArrayGeometry:
    return ArrayGeometry.from_mm(load_board(board).mic_positions_mm)


# --- the estimator on clean plane waves ------------------------------------------------


@pytest.mark.parametrize("board", ["respeaker-4mic", "respeaker-6mic", "respeaker-usb-v2"])
@pytest.mark.parametrize("azimuth_deg", [0.0, 47.0, 133.0, 222.0, 301.0])
def test_a_talker_is_found_within_20_degrees(board: str, azimuth_deg: float) -> None:
    positions = load_board(board).mic_positions_mm
    rng = np.random.default_rng(int(azimuth_deg))
    mics = plane_wave(babble(1.0, seed=int(azimuth_deg)), positions, azimuth_deg)
    mics += rng.standard_normal(mics.shape) * 400.0  # each mic's own noise, ~26 dB down
    found = estimate(DoaEstimator(geometry(board), RATE_HZ), mics)
    assert found is not None
    assert off_deg(found, azimuth_deg) <= TOLERANCE_DEG


@pytest.mark.parametrize("board", ["respeaker-4mic", "respeaker-6mic", "respeaker-2mic"])
def test_noise_alone_gives_no_direction(board: str) -> None:
    g = geometry(board)
    rng = np.random.default_rng(7)
    estimator = DoaEstimator(g, RATE_HZ)
    # Each mic's own noise, called speech all along: nothing points anywhere.
    assert (
        estimate(estimator, rng.standard_normal((2 * RATE_HZ, len(g.positions_m))) * 3000) is None
    )
    assert estimator.estimates > 10  # it did look, and found nothing clear
    assert estimator.score < estimator.min_score


def test_only_speech_is_listened_to_and_the_direction_expires() -> None:
    g = geometry("respeaker-4mic")
    mics = plane_wave(babble(1.0, seed=3), load_board("respeaker-4mic").mic_positions_mm, 90.0)
    estimator = DoaEstimator(g, RATE_HZ)
    assert estimate(estimator, mics, speech=False) is None
    assert estimator.estimates == 0
    found = estimate(estimator, mics)
    assert found is not None and off_deg(found, 90.0) <= TOLERANCE_DEG
    # Silence that is not speech: the direction holds a while, then is forgotten.
    estimate(estimator, np.zeros((RATE_HZ, 4)), speech=False)
    assert estimator.direction_deg == found
    estimate(estimator, np.zeros((RATE_HZ, 4)), speech=False)
    assert estimator.direction_deg is None


def test_the_direction_follows_a_talker_who_moves() -> None:
    board = load_board("respeaker-6mic")
    estimator = DoaEstimator(geometry("respeaker-6mic"), RATE_HZ)
    first = estimate(estimator, plane_wave(babble(1.0, 1), board.mic_positions_mm, 30.0))
    second = estimate(estimator, plane_wave(babble(1.0, 2), board.mic_positions_mm, 200.0))
    assert first is not None and off_deg(first, 30.0) <= TOLERANCE_DEG
    assert second is not None and off_deg(second, 200.0) <= TOLERANCE_DEG


# --- in a room ---------------------------------------------------------------------------


@pytest.mark.parametrize(("board", "azimuth_deg"), [("respeaker-4mic", 135.0),
                                                     ("respeaker-6mic", 250.0)])  # fmt: skip
def test_a_talker_in_a_reverberant_room_is_found(board: str, azimuth_deg: float) -> None:
    """A 5 x 4 m room, RT60 about 0.3 s, the talker 1.5 m away and a little higher."""
    positions = np.asarray(load_board(board).mic_positions_mm) / 1000.0
    centre = np.array([2.2, 1.9, 0.9])
    absorption, max_order = pra.inverse_sabine(0.3, [5.0, 4.0, 2.7])
    room = pra.ShoeBox(
        [5.0, 4.0, 2.7], fs=RATE_HZ, materials=pra.Material(absorption),
        max_order=min(max_order, 12),
    )  # fmt: skip
    az = math.radians(azimuth_deg)
    talker = centre + np.array([1.5 * math.cos(az), 1.5 * math.sin(az), 0.5])
    room.add_source(talker.tolist(), signal=babble(1.2, seed=11))
    mics = np.vstack([(centre[:2] + positions).T, np.full(len(positions), centre[2])])
    room.add_microphone_array(pra.MicrophoneArray(mics, RATE_HZ))
    room.simulate()
    heard = np.asarray(room.mic_array.signals).T  # (frames, mics)
    heard += np.random.default_rng(5).standard_normal(heard.shape) * 0.01 * np.std(heard)
    g = ArrayGeometry.from_mm(load_board(board).mic_positions_mm)
    # The talker is above the array's plane: compare with the azimuth alone.
    found = estimate(DoaEstimator(g, RATE_HZ), heard)
    assert found is not None
    assert off_deg(found, azimuth_deg) <= TOLERANCE_DEG


# --- two mics: left or right ---------------------------------------------------------------


def test_two_mics_tell_left_from_right_but_not_front_from_back() -> None:
    board = load_board("respeaker-2mic")
    g = ArrayGeometry.from_mm(board.mic_positions_mm)
    assert g.linear

    def ring_for(azimuth_deg: float) -> float | None:
        mics = plane_wave(babble(1.0, 4), board.mic_positions_mm, azimuth_deg)
        found = estimate(DoaEstimator(g, RATE_HZ), mics)
        assert found is not None and 0.0 <= found <= 180.0  # the half plane in front
        return ring_deg(g, found, ring_offset_deg=0.0, pixel_count=3,
                        mic_pixels=board.leds.mic_pixels)  # fmt: skip

    # mic 0 sits at -x next to pixel 0, mic 1 at +x next to pixel 2
    right, left = 360.0 * 2 / 3, 0.0
    assert ring_for(20.0) == right
    assert ring_for(-20.0) == right  # behind on the right: the same to two mics
    assert ring_for(160.0) == left
    assert ring_for(200.0) == left
    assert ring_for(90.0) is None  # straight ahead: no side to show


def test_a_ring_is_turned_by_its_offset() -> None:
    g = geometry("respeaker-usb-v2")
    kw: dict[str, Any] = {"pixel_count": 12, "mic_pixels": (0, 3, 6, 9)}
    assert ring_deg(g, 180.0, ring_offset_deg=180.0, **kw) == 0.0  # at mic 0: pixel 0
    assert ring_deg(g, 90.0, ring_offset_deg=180.0, **kw) == 270.0  # at mic 3: pixel 9
    assert ring_deg(g, None, ring_offset_deg=180.0, **kw) is None


def test_boards_that_cannot_point_get_no_direction_finder() -> None:
    assert RingDirection.for_board(load_board("generic-usb"), RATE_HZ) is None  # no geometry
    assert RingDirection.for_board(load_board("respeaker-4mic-linear"), RATE_HZ) is None
    finder = RingDirection.for_board(load_board("respeaker-usb-v2"), RATE_HZ)
    assert finder is not None and finder.channels == (1, 2, 3, 4)


def test_speech_while_the_speaker_plays_is_ignored() -> None:
    board = load_board("respeaker-4mic")
    finder = RingDirection(board, RATE_HZ)
    mics = plane_wave(babble(1.0, 8), board.mic_positions_mm, 45.0)
    playing = np.full(BLOCK, 3000.0)
    for start in range(0, RATE_HZ, BLOCK):
        finder.push(mics[start : start + BLOCK], playing, speech=True)
    assert finder.estimator.estimates == 0 and finder.ring_deg is None
    silent = np.zeros(BLOCK)
    for start in range(0, RATE_HZ, BLOCK):
        finder.push(mics[start : start + BLOCK], silent, speech=True)
    found = finder.ring_deg
    assert found is not None and off_deg(found, 45.0) <= TOLERANCE_DEG


def test_a_geometry_needs_two_separate_mics() -> None:
    with pytest.raises(ValueError, match="two mic positions"):
        ArrayGeometry.from_mm([(0.0, 0.0)])
    with pytest.raises(ValueError, match="same place"):
        ArrayGeometry.from_mm([(1.0, 1.0), (1.0, 1.0)])


# --- the profile key ---------------------------------------------------------------------


def _profile(**leds: Any) -> dict[str, Any]:
    return {
        "title": "t", "alsa_card_names": [], "input_channels": 2, "output_channels": 2,
        "rates_hz": [16000], "sample_width_bits": 16, "mic_channels": [0, 1],
        "leds": {"chip": "apa102", "count": 12, "spi_bus": 0, "spi_device": 0, **leds},
    }  # fmt: skip


def test_the_ring_offset_is_read_and_checked() -> None:
    assert parse_board(_profile(ring_offset_deg=90), "b.toml").leds.ring_offset_deg == 90.0
    assert parse_board(_profile(), "b.toml").leds.ring_offset_deg == 0.0
    for bad in (400.0, "north", True, math.nan):
        with pytest.raises(BoardError, match=r"b\.toml: leds\.ring_offset_deg"):
            parse_board(_profile(ring_offset_deg=bad), "b.toml")


# --- the daemon on fake hardware -------------------------------------------------------------


def spoken(seconds: float) -> npt.NDArray[np.int16]:
    """A sentence from espeak-ng when installed (the voice detector must call it speech),
    else speech-like noise."""
    if shutil.which("espeak-ng"):
        pcm = np.frombuffer(espeak_pcm("Hello there, what is the weather like today?"), "<i2")
        voice = np.asarray(soxr.resample(pcm.astype(np.float32), 24000, RATE_HZ))
        voice = voice[: round(seconds * RATE_HZ)] * (8000.0 / max(float(np.std(voice)), 1.0))
    else:
        voice = babble(seconds, seed=2)
    return np.clip(np.round(voice), -32768, 32767).astype(np.int16)


def level(pixel: Rgb) -> int:
    return pixel.r + pixel.g + pixel.b


def brightest(pixels: list[Rgb]) -> int:
    return int(np.argmax([level(p) for p in pixels]))


def listen_from(tmp_path: Path, board: str, azimuth_deg: float, **leds: Any) -> Daemon:
    """Run the daemon's capture loop on virtual time while a talker speaks from
    ``azimuth_deg``, listening throughout."""
    config = with_overrides(
        load_config(None),
        device={"hardware": "fake", "state_dir": str(tmp_path)},
        leds=leds,
    )
    daemon = Daemon(config, build_fake(HardwareRequest("fake", board=board)), "sk-test-doa")
    duplex = daemon.hw.duplex
    assert isinstance(duplex, FakeDuplex)

    async def body() -> None:
        bridge = AudioBridge(
            asyncio.get_running_loop(), duplex.format, daemon.playback,
            mic_channel=daemon.mic_channel, doa_channels=daemon.ui.doa_channels,
        )  # fmt: skip
        duplex.set_callback(bridge.callback)
        daemon.dispatch(Event.CONNECTED)
        daemon.dispatch(Event.WAKE_DETECTED)
        daemon.dispatch(Event.USER_SPEECH_STARTED)
        assert daemon.state is State.LISTENING
        capture = asyncio.create_task(daemon._capture_loop(bridge))
        duplex.feed_from(spoken(2.0), azimuth_deg)
        blocks = round(2.0 * duplex.format.rate_hz / duplex.format.block_frames)
        for _ in range(blocks):
            duplex.step()
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        capture.cancel()
        await asyncio.gather(capture, return_exceptions=True)

    asyncio.run(body())
    return daemon


@pytest.mark.parametrize(
    ("board", "azimuth_deg", "pixel"),
    [("respeaker-4mic", 120.0, 4), ("respeaker-6mic", 300.0, 10), ("respeaker-usb-v2", 0.0, 6)],
)
def test_the_listening_ring_points_at_the_talker(
    tmp_path: Path, board: str, azimuth_deg: float, pixel: int
) -> None:
    daemon = listen_from(tmp_path, board, azimuth_deg)
    ui = daemon.ui
    assert ui.doa_deg is not None
    pixels = ui.pixels(ui.entered_s + 1.0, daemon.hw.leds.count)
    assert abs(brightest(pixels) - pixel) <= 1
    # The far side stays dim: it still reads as on, but clearly not the talker's.
    assert 0 < level(pixels[(pixel + 6) % 12]) < level(pixels[pixel]) / 3
    # The turn moves on: the ring stops pointing.
    daemon.dispatch(Event.USER_SPEECH_STOPPED)
    assert daemon.state is not State.LISTENING and ui.doa_deg is None


@pytest.mark.parametrize(("azimuth_deg", "lit", "dim"), [(170.0, 0, 2), (15.0, 2, 0)])
def test_the_two_mic_hat_lights_the_end_on_the_talkers_side(
    tmp_path: Path, azimuth_deg: float, lit: int, dim: int
) -> None:
    daemon = listen_from(tmp_path, "respeaker-2mic", azimuth_deg)  # 170: left, toward mic 0
    pixels = daemon.ui.pixels(daemon.ui.entered_s + 1.0, 3)
    assert brightest(pixels) == lit
    assert level(pixels[dim]) < level(pixels[lit]) / 3


def test_pointing_can_be_turned_off(tmp_path: Path) -> None:
    daemon = listen_from(tmp_path, "respeaker-4mic", 120.0, doa=False)
    assert daemon.ui.doa_deg is None
    pixels = daemon.ui.pixels(daemon.ui.entered_s + 1.0, 12)
    assert len(set(pixels)) == 1  # all round
