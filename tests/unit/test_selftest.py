"""``edgevoice selftest`` on fake hardware, against the local simulator and closed ports.

The fake duplex plays its output back into the mic (``echo_gain``), as a
speaker next to the mics does, so the test tone is heard through the same
callback path the daemon uses. Button presses come from a thread of their own,
as gpiozero's edge thread delivers them.
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any, ParamSpec

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from device.config import Config, config_from_dict, with_overrides
from device.credentials import ApiKey, Secret
from device.errors import CredentialError
from device.realtime.simulator import RealtimeSimulator
from device.selftest import (
    CheckResult,
    analyse_tone,
    open_connection,
    run_selftest,
    selftest_exit_code,
    tone_signal,
)
from hw.boards import load_board
from hw.factory import Hardware, NullButtons, NullLeds
from hw.fake import FakeDuplex
from hw.panel_fake import FakeButtons, FakeLeds, FakeNotifier
from hw.ports import (
    AudioError,
    ButtonEvent,
    ButtonHandler,
    Buttons,
    DuplexCallback,
    DuplexFormat,
    Leds,
    Rgb,
)
from hw.pyaudio_duplex import PyAudioDuplex
from tests.integration.conftest import require_audio_server

KEY = "sk-selftest0123456789"
RATE_HZ = 16000
BLOCK = 320
ECHO_DELAY_MS = 3.0
LATENCY_BLOCKS = 2  # FakeDuplex's default output latency
P = ParamSpec("P")


def in_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


def fake_hardware(
    *,
    echo_gain: float = 0.5,
    duplex: Any = None,
    leds: Leds | None = None,
    buttons: Buttons | None = None,
    board: str = "respeaker-2mic",
) -> Hardware:
    profile = load_board(board)
    fmt = DuplexFormat(RATE_HZ, BLOCK, profile.input_channels, profile.output_channels)
    if duplex is None:
        duplex = FakeDuplex(
            fmt,
            mic_channels=profile.mic_channels,
            echo_gain=echo_gain,
            echo_delay_ms=ECHO_DELAY_MS,
            speed=20.0,
        )
    return Hardware(
        "fake",
        profile,
        duplex,
        leds or FakeLeds(max(profile.leds.count, 1)),
        buttons or FakeButtons(["talk"]),
        FakeNotifier(),
    )


def config(url: str = "ws://127.0.0.1:9/v1/realtime") -> Config:
    return with_overrides(config_from_dict({}, "test"), realtime={"url": url})


def key() -> ApiKey:
    return ApiKey(Secret(KEY), "test credential")


def no_key() -> ApiKey:
    raise CredentialError("no OpenAI API key found; looked in: $OPENAI_API_KEY (not set)")


async def no_wait(_: float) -> None:
    return None


class EdgeButtons(FakeButtons):
    """FakeButtons whose edges each read the handler once, as the GPIO driver's do.

    The selftest removes its handler as soon as the press reaches the loop, which
    may fall between the press and the release edge.
    """

    def __init__(self) -> None:
        super().__init__(["talk"])
        self.current: ButtonHandler | None = None

    def set_handler(self, handler: ButtonHandler | None) -> None:
        self.current = handler
        super().set_handler(handler)

    def press(self, name: str, hold_s: float = 0.1) -> None:
        for pressed in (True, False):
            handler = self.current
            if handler is not None:
                handler(ButtonEvent(name, pressed, 0.0))


class Console:
    """Collects printed lines; presses a button from another thread when asked to."""

    def __init__(self, buttons: FakeButtons | None = None) -> None:
        self.lines: list[str] = []
        self.buttons = buttons
        self.press_threads: list[threading.Thread] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if line.startswith("press any button") and self.buttons is not None:
            thread = threading.Thread(target=self.buttons.press, args=("talk",))
            self.press_threads.append(thread)
            thread.start()

    def result_lines(self) -> list[str]:
        return [line for line in self.lines if line.startswith(("PASS", "FAIL"))]


async def selftest(
    hardware: Hardware, cfg: Config, console: Console, **kwargs: Any
) -> dict[str, CheckResult]:
    options: dict[str, Any] = {
        "api_key_loader": key,
        "connect": open_connection,
        "button_timeout_s": 5.0 if console.buttons else 0.01,
        "sleep": no_wait,
        "out": console,
    }
    results = await run_selftest(cfg, hardware, **{**options, **kwargs})
    for thread in console.press_threads:
        thread.join()
    assert [r.name for r in results] == ["audio", "leds", "button", "credential", "network"]
    assert console.result_lines() == [r.line() for r in results]
    assert KEY not in "\n".join(console.lines)
    return {r.name: r for r in results}


def measured(detail: str, pattern: str) -> float:
    match = re.search(pattern, detail)
    assert match, detail
    return float(match.group(1))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the whole run -----------------------------------------------------------------------


@in_loop
async def test_everything_passes_on_fake_hardware_against_the_simulator() -> None:
    buttons = EdgeButtons()
    leds = FakeLeds(3)
    hardware = fake_hardware(leds=leds, buttons=buttons)
    console = Console(buttons)
    async with RealtimeSimulator() as sim:
        results = await selftest(hardware, config(sim.url), console)
        assert sim.connections == 1
    assert all(r.ok for r in results.values()), console.lines
    assert selftest_exit_code(list(results.values())) == 0

    audio = results["audio"].detail
    assert audio.startswith("1000 Hz tone heard on mic channel 0 at 16000 Hz at -26.0 dBFS")
    expected_ms = ECHO_DELAY_MS + LATENCY_BLOCKS * BLOCK * 1000 / RATE_HZ
    assert abs(measured(audio, r"([\d.]+) ms after") - expected_ms) <= 2 * 1000 / RATE_HZ
    assert "quiet" not in audio and "clips" not in audio
    shown = [frame.pixels for frame in leds.frames]
    colours = [Rgb(255, 0, 0), Rgb(0, 255, 0), Rgb(0, 0, 255), Rgb(255, 255, 255), Rgb(0, 0, 0)]
    assert shown == [(c, c, c) for c in colours]
    assert results["button"].detail == "'talk' pressed"
    assert results["credential"].detail == "API key found in test credential"
    assert results["network"].detail.endswith("WebSocket handshake accepted the key")
    assert "press any button (talk) within 5 s" in console.lines


@in_loop
async def test_silence_on_the_mic_fails_audio_with_advice() -> None:
    console = Console()
    results = await selftest(
        fake_hardware(echo_gain=0.0), config(f"ws://127.0.0.1:{closed_port()}/v1/realtime"), console
    )
    audio = results["audio"]
    assert not audio.ok and "tone was not heard" in audio.detail
    assert "speaker connection" in audio.advice and "alsamixer" in audio.advice
    assert "edgevoice devices" in audio.advice
    assert (
        console.result_lines()[0].startswith("FAIL audio: ")
        and " — check the " in console.result_lines()[0]
    )
    assert selftest_exit_code(list(results.values())) == 1


@in_loop
async def test_a_speaker_far_from_the_mics_passes_with_its_low_level_reported() -> None:
    results = await selftest(fake_hardware(echo_gain=0.03), config(), Console())
    audio = results["audio"]
    assert audio.ok and "quiet" in audio.detail
    assert measured(audio.detail, r"at (-[\d.]+) dBFS") == pytest.approx(-50.5, abs=0.2)


class Scripted(FakeDuplex):
    """A card that is busy (``start`` raises) or wedged (opens, never calls back)."""

    def __init__(self, error: str | None = None) -> None:
        super().__init__(DuplexFormat(RATE_HZ, BLOCK, 2, 2))
        self.error, self.stopped, self.starts = error, False, 0

    def start(self, callback: DuplexCallback) -> None:
        self.starts += 1
        if self.error:
            raise AudioError(self.error)

    def stop(self) -> None:
        self.stopped = True


@in_loop
async def test_a_card_that_cannot_be_opened_or_stalls_fails_audio() -> None:
    hardware = fake_hardware()
    assert isinstance(hardware.duplex, FakeDuplex)
    hardware.duplex.unplug()
    audio = (await selftest(hardware, config(), Console()))["audio"]
    assert not audio.ok and "cannot open audio" in audio.detail
    assert "systemctl stop" not in audio.advice

    busy = Scripted("cannot open 'seeed2micvoicec' (duplex): [Errno -9985] Device busy")
    audio = (await selftest(fake_hardware(duplex=busy), config(), Console()))["audio"]
    assert audio.advice.startswith("stop the daemon first (systemctl stop edgevoice)")

    wedged = Scripted()
    audio = (
        await selftest(fake_hardware(duplex=wedged), config(), Console(), audio_timeout_s=0.05)
    )["audio"]
    assert not audio.ok and "no audio blocks arrived within 0.05 s, twice" in audio.detail
    assert wedged.starts == 2 and wedged.stopped


@pytest.mark.audio_server
@in_loop
async def test_the_tone_is_heard_through_a_real_portaudio_stream() -> None:
    """PulseAudio's null sink returns what is played on its monitor: a real duplex path."""
    require_audio_server()
    board = load_board("generic-usb")
    duplex = PyAudioDuplex(DuplexFormat(48_000, 960, 1, 2), "pulse")
    hardware = Hardware("real", board, duplex, NullLeds(), NullButtons(), FakeNotifier())
    try:
        audio = (await selftest(hardware, config(), Console()))["audio"]
    finally:
        hardware.close()
    assert audio.ok, audio.line()
    assert 0 <= measured(audio.detail, r"([\d.]+) ms after") < 250  # varies by whole buffers


@in_loop
async def test_a_mic_channel_the_card_lacks_is_named() -> None:
    cfg = with_overrides(config(), audio={"mic_channel": 5})
    audio = (await selftest(fake_hardware(), cfg, Console()))["audio"]
    assert audio == CheckResult(
        "audio",
        False,
        "mic channel 5 does not exist (2 input channels)",
        "set audio.mic_channel to -1 (the board's first mic) or below 2",
    )


# -- LEDs and buttons --------------------------------------------------------------------


class BrokenLeds(FakeLeds):
    def show(self, pixels: Any) -> None:
        raise OSError(2, "No such file or directory: '/dev/spidev0.0'")


@pytest.mark.parametrize(
    ("board", "count", "advice"),
    [("respeaker-2mic", 3, "dtparam=spi=on"), ("respeaker-4mic", 12, "through GPIO5")],
)
@in_loop
async def test_leds_that_raise_fail_with_spi_and_power_pin_advice(
    board: str, count: int, advice: str
) -> None:
    results = await selftest(
        fake_hardware(leds=BrokenLeds(count), board=board), config(), Console()
    )
    leds = results["leds"]
    assert not leds.ok and "spidev0.0" in leds.detail and advice in leds.advice


@in_loop
async def test_boards_without_leds_or_buttons_or_led_drivers_skip_those_checks() -> None:
    hardware = fake_hardware(board="generic-usb", leds=NullLeds(), buttons=NullButtons())
    results = await selftest(hardware, config(), Console())
    assert results["leds"] == CheckResult("leds", True, "no LEDs on this board")
    assert results["button"] == CheckResult("button", True, "no buttons")
    results = await selftest(
        fake_hardware(board="respeaker-usb-v2", leds=NullLeds(12)), config(), Console()
    )
    assert results["leds"] == CheckResult(
        "leds", True, "the board's LEDs (usb_hid) have no driver: skipped"
    )


@in_loop
async def test_no_press_in_time_fails_with_the_pin_named() -> None:
    results = await selftest(fake_hardware(), config(), Console())
    button = results["button"]
    assert not button.ok and button.detail == "no press within 0.01 s"
    assert "talk on GPIO17" in button.advice


# -- credential and network --------------------------------------------------------------


@in_loop
async def test_a_missing_key_fails_and_the_network_check_skips_the_handshake() -> None:
    async with RealtimeSimulator() as sim:
        results = await selftest(fake_hardware(), config(sim.url), Console(), api_key_loader=no_key)
        assert sim.connections == 0
    credential = results["credential"]
    assert not credential.ok and "no OpenAI API key found" in credential.detail
    assert "openai-api-key" in credential.advice
    network = results["network"]
    assert network.ok and network.detail.endswith("handshake skipped: no API key")


@in_loop
async def test_a_closed_port_fails_the_network_check() -> None:
    port = closed_port()
    results = await selftest(
        fake_hardware(), config(f"ws://127.0.0.1:{port}/v1/realtime"), Console()
    )
    network = results["network"]
    assert not network.ok and network.detail == f"127.0.0.1:{port} refused the connection"
    assert "realtime.url" in network.advice


@in_loop
async def test_a_refused_key_is_named_as_such() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.UNAUTHORIZED, "Incorrect API key provided\n")

    async with serve(lambda ws: ws.close(), "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        results = await selftest(
            fake_hardware(), config(f"ws://127.0.0.1:{port}/v1/realtime"), Console()
        )
    network = results["network"]
    assert not network.ok and "the key was refused (HTTP 401)" in network.detail
    assert "test credential" in network.advice


@pytest.mark.parametrize(
    ("error", "detail", "advice"),
    [
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "cannot resolve api.openai.com (Name or service not known)",
            "DNS",
        ),
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed"),
            "TLS certificate check failed for api.openai.com",
            "clock",
        ),
        (TimeoutError(), "no answer from api.openai.com:443", "firewall"),
        (
            OSError(101, "Network is unreachable"),
            "cannot connect to api.openai.com:443",
            "network connection",
        ),
    ],
    ids=["dns", "tls", "timeout", "unreachable"],
)
@in_loop
async def test_network_failures_say_what_to_check(
    error: BaseException, detail: str, advice: str
) -> None:
    hosts: list[tuple[str, int, bool]] = []

    async def failing(host: str, port: int, tls: bool) -> str:
        hosts.append((host, port, tls))
        raise error

    cfg = config_from_dict({}, "defaults")  # the real endpoint: never reached here
    results = await selftest(fake_hardware(), cfg, Console(), connect=failing)
    assert hosts == [("api.openai.com", 443, True)]
    network = results["network"]
    assert not network.ok and network.detail.startswith(detail) and advice in network.advice


@in_loop
async def test_an_unexpected_error_in_one_check_does_not_stop_the_others() -> None:
    async def buggy(host: str, port: int, tls: bool) -> str:
        raise ValueError("a bug")

    console = Console()
    results = await selftest(fake_hardware(), config(), console, connect=buggy)
    assert results["network"] == CheckResult(
        "network", False, "ValueError: a bug", "unexpected; run again with device.log_level = debug"
    )
    assert results["audio"].ok


def test_exit_code_is_zero_only_when_everything_passed() -> None:
    ok, bad = CheckResult("a", True, "fine"), CheckResult("b", False, "broken", "fix it")
    assert selftest_exit_code([ok, ok]) == 0
    assert selftest_exit_code([ok, bad]) == 1
    assert bad.line() == "FAIL b: broken — fix it" and ok.line() == "PASS a: fine"


# -- the tone analysis -------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    rate_hz=st.sampled_from([16000, 44100, 48000]),
    delay_frames=st.integers(0, 4000),
    gain=st.floats(0.02, 1.0),
    seed=st.integers(0, 2**16),
)
def test_delay_and_level_are_measured_through_noise(
    rate_hz: int, delay_frames: int, gain: float, seed: int
) -> None:
    signal, start, frames = tone_signal(rate_hz)
    heard = np.zeros(len(signal), np.float64)
    heard[delay_frames:] = gain * signal[: len(signal) - delay_frames]
    noise = np.random.default_rng(seed).normal(0, 10, len(heard))  # about -70 dBFS broadband
    mic = np.round(heard + noise).astype(np.int16)
    report = analyse_tone(mic, rate_hz, start, frames)
    assert report.heard
    assert report.delay_ms is not None
    assert abs(report.delay_ms - delay_frames * 1000 / rate_hz) <= 0.5  # 8 samples at 16 kHz
    assert report.level_dbfs == pytest.approx(-20 + 20 * np.log10(gain), abs=0.5)
    assert report.noise_dbfs < report.level_dbfs - 10
    assert not report.clipped


def test_noise_alone_is_not_a_tone() -> None:
    signal, start, frames = tone_signal(RATE_HZ)
    mic = np.random.default_rng(1).normal(0, 300, len(signal)).astype(np.int16)
    report = analyse_tone(mic, RATE_HZ, start, frames)
    assert not report.heard and report.delay_ms is None


def test_hum_before_the_tone_raises_the_noise_floor_above_a_faint_tone() -> None:
    signal, start, frames = tone_signal(RATE_HZ)
    t = np.arange(len(signal)) / RATE_HZ
    hum = 200 * np.sin(2 * np.pi * 1000 * t)  # a 1 kHz whine, there all along
    mic = np.round(hum + 0.05 * signal).astype(np.int16)
    assert not analyse_tone(mic, RATE_HZ, start, frames).heard


def test_a_clipping_mic_is_reported() -> None:
    signal, start, frames = tone_signal(RATE_HZ)
    mic = np.clip(signal.astype(np.int32) * 12, -32768, 32767).astype(np.int16)
    report = analyse_tone(mic, RATE_HZ, start, frames)
    assert report.heard and report.clipped
