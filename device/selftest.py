"""``edgevoice selftest``: checks a freshly installed speaker part by part.

Each check exercises one part the way the daemon will use it and, when it
fails, says what to look at: a beep played and recorded through the same duplex
stream (speaker wiring, mixer levels, the right card), the LEDs cycled through
their colours (SPI, power pin), a button press (wiring), the API key (found,
never shown) and the way to the service (DNS, TCP, TLS, then a WebSocket
handshake with the key). An installer gets one line per part instead of a
silent speaker and a journal to read.

The tone analysis is pure (samples in, numbers out); time enters only through
the injected ``sleep`` and the timeouts given.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from device.config import Config
from device.credentials import ApiKey
from device.errors import CredentialError, ServiceError
from device.realtime.client import RealtimeClient, realtime_url
from hw.factory import Hardware, NullLeds
from hw.ports import OFF, AudioDuplex, AudioError, ButtonEvent, PcmBlock, Rgb, StreamTime

TONE_HZ = 1000
TONE_AMPLITUDE = 0.1  # -20 dBFS: clearly audible, far from clipping a small speaker
LEAD_IN_S = 0.3  # silence first: the noise floor, and time for the stream to settle
TONE_S = 0.4
TAIL_S = 0.8  # room for the delay through the sound system
HEARD_MIN_DBFS = -60.0
HEARD_MIN_SNR_DB = 10.0
QUIET_DBFS = -40.0  # heard, but quiet enough to deserve a remark
CLIP_LEVEL = 32000
AUDIO_TIMEOUT_S = 10.0
LED_STEP_S = 0.5
LED_COLOURS = (
    ("red", Rgb(255, 0, 0)),
    ("green", Rgb(0, 255, 0)),
    ("blue", Rgb(0, 0, 255)),
    ("white", Rgb(255, 255, 255)),
)
AUDIO_ADVICE = (
    "check the speaker connection, the playback and capture levels in alsamixer, "
    "and that `edgevoice devices` shows the HAT's card"
)

Sleep = Callable[[float], Awaitable[None]]
Connect = Callable[[str, int, bool], Awaitable[str]]
"""Opens a connection to (host, port), with TLS when asked, closes it, returns the peer."""


@dataclass(frozen=True)
class CheckResult:
    """One check: whether it passed, what was seen, and what to do when it failed."""

    name: str
    ok: bool
    detail: str
    advice: str = ""

    def line(self) -> str:
        if self.ok:
            return f"PASS {self.name}: {self.detail}"
        return f"FAIL {self.name}: {self.detail} — {self.advice}"


@dataclass(frozen=True)
class ToneReport:
    """What the mic heard of the test tone. Levels are of the 1 kHz component, in dBFS."""

    heard: bool
    level_dbfs: float
    noise_dbfs: float
    delay_ms: float | None
    clipped: bool


def selftest_exit_code(results: list[CheckResult]) -> int:
    """0 when every check passed, else 1."""
    return 0 if all(r.ok for r in results) else 1


# -- audio ---------------------------------------------------------------------------


def tone_signal(rate_hz: int) -> tuple[npt.NDArray[np.int16], int, int]:
    """The signal to play (mono), the frame the tone starts at, and its length in frames."""
    start, frames = round(LEAD_IN_S * rate_hz), round(TONE_S * rate_hz)
    signal = np.zeros(start + frames + round(TAIL_S * rate_hz), np.int16)
    t = np.arange(frames) / rate_hz
    signal[start : start + frames] = np.round(
        TONE_AMPLITUDE * 32767 * np.sin(2 * np.pi * TONE_HZ * t)
    ).astype(np.int16)
    return signal, start, frames


FLOOR_DBFS = -120.0  # below any real converter's noise: digital silence reads as this


def _dbfs(amplitude: float) -> float:
    return max(FLOOR_DBFS, 20 * math.log10(max(amplitude, 1e-9) / 32768))


def analyse_tone(
    mic: npt.NDArray[np.int16], rate_hz: int, tone_start: int, tone_frames: int
) -> ToneReport:
    """Level, noise floor and onset delay of the test tone in a mono recording.

    The 1 kHz envelope comes from a sliding single-bin DFT over four periods,
    so hum, hiss and speech elsewhere in the spectrum barely count. The level is
    the envelope's median over the tone (a maximum would read noise peaks as
    level), the noise its 95th percentile before the tone. The onset is where the
    envelope first reaches half the level: the centred window puts that crossing
    on the true onset. Cross-correlating a pure tone would lock onto a wrong
    period after one glitch.
    """
    x = mic.astype(np.float64)
    window = max(1, round(4 * rate_hz / TONE_HZ))
    baseband = x * np.exp(-2j * np.pi * TONE_HZ * np.arange(len(x)) / rate_hz)
    envelope = 2 * np.abs(np.convolve(baseband, np.ones(window) / window, mode="same"))
    before = envelope[window : max(window, tone_start - window)]
    after = envelope[tone_start:]
    noise = float(np.percentile(before, 95)) if len(before) else 0.0
    level = peak = float(after.max()) if len(after) else 0.0
    onset = int(np.argmax(after >= peak / 2))
    plateau = after[onset + window : onset + tone_frames - window]
    if len(plateau):
        level = float(np.median(plateau))
        onset = int(np.argmax(after >= level / 2))
    level_dbfs, noise_dbfs = _dbfs(level), _dbfs(noise)
    heard = level_dbfs >= HEARD_MIN_DBFS and level_dbfs - noise_dbfs >= HEARD_MIN_SNR_DB
    delay_ms = onset * 1000.0 / rate_hz if heard else None
    clipped = bool(len(x)) and float(np.abs(x).max()) >= CLIP_LEVEL
    return ToneReport(heard, level_dbfs, noise_dbfs, delay_ms, clipped)


async def _play_and_record(
    duplex: AudioDuplex, signal: npt.NDArray[np.int16], mic_channel: int, timeout_s: float
) -> npt.NDArray[np.int16]:
    """Play ``signal`` on every output channel; the mic channel over the same blocks."""
    fmt = duplex.format
    blocks = -(-len(signal) // fmt.block_frames)
    captured: list[npt.NDArray[np.int16]] = []  # appended by the audio thread only
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def callback(mic: PcmBlock, when: StreamTime) -> PcmBlock:
        index = len(captured)
        out = np.zeros((fmt.block_frames, fmt.out_channels), np.int16)
        if index < blocks:
            captured.append(mic[:, mic_channel].copy())
            chunk = signal[index * fmt.block_frames : (index + 1) * fmt.block_frames]
            out[: len(chunk)] = chunk[:, None]
            if index + 1 == blocks:
                loop.call_soon_threadsafe(finish)
        return out

    duplex.start(callback)
    try:
        await asyncio.wait_for(done, timeout_s)
    finally:
        duplex.stop()  # no callback runs after this returns: ``captured`` is ours now
    return np.concatenate(captured)


async def check_audio(config: Config, hardware: Hardware, timeout_s: float) -> CheckResult:
    duplex, board = hardware.duplex, hardware.board
    fmt = duplex.format
    configured = config.audio.mic_channel
    mic_channel = board.mic_channels[0] if configured < 0 else configured
    if mic_channel >= fmt.in_channels:
        return CheckResult(
            "audio",
            False,
            f"mic channel {mic_channel} does not exist ({fmt.in_channels} input channels)",
            f"set audio.mic_channel to -1 (the board's first mic) or below {fmt.in_channels}",
        )
    signal, tone_start, tone_frames = tone_signal(fmt.rate_hz)
    try:
        try:
            mic = await _play_and_record(duplex, signal, mic_channel, timeout_s)
        except TimeoutError:  # a sound server may end a stream as it starts: one more try
            mic = await _play_and_record(duplex, signal, mic_channel, timeout_s)
    except AudioError as exc:
        busy = "busy" in str(exc).lower()
        advice = (
            "stop the daemon first (systemctl stop edgevoice): one program at a time "
            "can open the card; then "
            if busy
            else ""
        ) + AUDIO_ADVICE
        return CheckResult("audio", False, f"cannot open audio: {exc}", advice)
    except TimeoutError:
        return CheckResult(
            "audio",
            False,
            f"no audio blocks arrived within {timeout_s:g} s, twice (the stream stalled)",
            AUDIO_ADVICE,
        )
    report = analyse_tone(mic, fmt.rate_hz, tone_start, tone_frames)
    where = f"mic channel {mic_channel} at {fmt.rate_hz} Hz"
    if not report.heard:
        return CheckResult(
            "audio",
            False,
            f"the {TONE_HZ} Hz tone was not heard on {where} "
            f"(level {report.level_dbfs:.1f} dBFS, noise "
            f"{report.noise_dbfs:.1f} dBFS)",
            AUDIO_ADVICE,
        )
    detail = (
        f"{TONE_HZ} Hz tone heard on {where} at {report.level_dbfs:.1f} dBFS "
        f"(noise {report.noise_dbfs:.1f} dBFS), {report.delay_ms:.1f} ms after it was played"
    )
    if report.level_dbfs < QUIET_DBFS:
        detail += (
            "; quiet: normal when the speaker is far from the mics, otherwise raise "
            "the capture gain in alsamixer"
        )
    if report.clipped:
        detail += "; the mic clips: lower the capture gain or the volume in alsamixer"
    return CheckResult("audio", True, detail)


# -- LEDs and buttons ----------------------------------------------------------------


def _led_advice(hardware: Hardware) -> str:
    leds = hardware.board.leds
    if leds.chip == "apa102":
        advice = (
            f"check that SPI is enabled (dtparam=spi=on in config.txt) and "
            f"/dev/spidev{leds.spi_bus}.{leds.spi_device} exists"
        )
    else:
        pins = ", ".join(f"GPIO{p}" for p in leds.pins)
        advice = f"check that no other program uses the LED pins ({pins or 'none'})"
    if leds.power_pin is not None:
        advice += f"; the LEDs are powered through GPIO{leds.power_pin}, which must be free"
    return advice


async def check_leds(hardware: Hardware, sleep: Sleep) -> CheckResult:
    chip = hardware.board.leds.chip
    if chip == "none":
        return CheckResult("leds", True, "no LEDs on this board")
    leds = hardware.leds
    if isinstance(leds, NullLeds):
        return CheckResult("leds", True, f"the board's LEDs ({chip}) have no driver: skipped")
    try:
        for _, colour in LED_COLOURS:
            leds.show([colour] * leds.count)
            await sleep(LED_STEP_S)
        leds.show([OFF] * leds.count)
    except Exception as exc:
        return CheckResult("leds", False, f"{type(exc).__name__}: {exc}", _led_advice(hardware))
    names = ", ".join(name for name, _ in LED_COLOURS)
    return CheckResult("leds", True, f"showed {names} on {leds.count} LED(s) ({chip})")


async def check_button(
    hardware: Hardware, timeout_s: float, out: Callable[[str], None]
) -> CheckResult:
    buttons = hardware.buttons
    if not buttons.names:
        return CheckResult("button", True, "no buttons")
    loop = asyncio.get_running_loop()
    pressed: asyncio.Future[str] = loop.create_future()

    def on_loop(event: ButtonEvent) -> None:
        if event.pressed and not pressed.done():
            pressed.set_result(event.name)

    def handler(event: ButtonEvent) -> None:  # called on the button backend's thread
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(on_loop, event)

    buttons.set_handler(handler)
    try:
        out(f"press any button ({', '.join(buttons.names)}) within {timeout_s:g} s")
        name = await asyncio.wait_for(pressed, timeout_s)
    except TimeoutError:
        pins = ", ".join(f"{b.name} on GPIO{b.pin}" for b in hardware.board.buttons)
        return CheckResult(
            "button",
            False,
            f"no press within {timeout_s:g} s",
            f"check the button's wiring ({pins or 'see the board profile'}) and "
            "that no other program uses its pin",
        )
    finally:
        buttons.set_handler(None)
    return CheckResult("button", True, f"{name!r} pressed")


# -- credential and network ----------------------------------------------------------


def check_credential(loader: Callable[[], ApiKey]) -> tuple[CheckResult, ApiKey | None]:
    try:
        key = loader()
    except CredentialError as exc:
        return CheckResult(
            "credential",
            False,
            str(exc),
            "install the key as the systemd credential openai-api-key "
            "(see README), or set realtime.api_key_file",
        ), None
    return CheckResult("credential", True, f"API key found in {key.source}"), key


async def open_connection(host: str, port: int, tls: bool) -> str:
    """Connect to (host, port), with certificate-checked TLS when asked; the peer address."""
    context = ssl.create_default_context() if tls else None
    _, writer = await asyncio.open_connection(host, port, ssl=context)
    peer = writer.get_extra_info("peername")
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def _network_failure(exc: BaseException, host: str, port: int, timeout_s: float) -> CheckResult:
    if isinstance(exc, socket.gaierror):
        return CheckResult(
            "network",
            False,
            f"cannot resolve {host} ({exc.strerror})",
            "check the network connection and DNS (is Wi-Fi set up?)",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = getattr(exc, "verify_message", None) or exc
        return CheckResult(
            "network",
            False,
            f"TLS certificate check failed for {host} ({reason})",
            "check the system clock (timedatectl; a Pi has no clock battery) "
            "and that no proxy intercepts TLS",
        )
    if isinstance(exc, ConnectionRefusedError):
        return CheckResult(
            "network",
            False,
            f"{host}:{port} refused the connection",
            "check realtime.url (host and port)",
        )
    if isinstance(exc, TimeoutError):
        return CheckResult(
            "network",
            False,
            f"no answer from {host}:{port} within {timeout_s:g} s",
            "check the network; a firewall may block it",
        )
    return CheckResult(
        "network",
        False,
        f"cannot connect to {host}:{port} ({type(exc).__name__}: {exc})",
        "check the network connection",
    )


async def check_network(config: Config, key: ApiKey | None, connect: Connect) -> CheckResult:
    rt = config.realtime
    url = urlsplit(rt.url)
    host, tls = url.hostname or "", url.scheme == "wss"
    port = url.port or (443 if tls else 80)
    timeout_s = rt.connect_timeout_s
    try:
        peer = await asyncio.wait_for(connect(host, port, tls), timeout_s)
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError too
        return _network_failure(exc, host, port, timeout_s)
    reached = f"{'TLS' if tls else 'TCP'} to {host}:{port} ({peer}) ok"
    if key is None:
        return CheckResult("network", True, f"{reached}; handshake skipped: no API key")
    client = RealtimeClient(
        realtime_url(rt.url, rt.model), key.secret.reveal(), open_timeout_s=timeout_s
    )
    try:
        await client.connect()
        await client.close(1000)
    except ServiceError as exc:
        if exc.status in (401, 403):
            return CheckResult(
                "network",
                False,
                f"{reached}; the key was refused (HTTP {exc.status})",
                f"install a valid API key (the one in use comes from {key.source})",
            )
        return CheckResult(
            "network",
            False,
            f"{reached}; the WebSocket handshake failed: {exc}",
            "check realtime.url and realtime.model, and the account's limits",
        )
    except (OSError, TimeoutError) as exc:
        return CheckResult(
            "network",
            False,
            f"{reached}; the WebSocket handshake failed ({type(exc).__name__}: {exc})",
            "check the network connection",
        )
    return CheckResult("network", True, f"{reached}; WebSocket handshake accepted the key")


# -- the whole run -------------------------------------------------------------------


async def run_selftest(
    config: Config,
    hardware: Hardware,
    *,
    api_key_loader: Callable[[], ApiKey],
    connect: Connect,
    button_timeout_s: float = 10.0,
    audio_timeout_s: float = AUDIO_TIMEOUT_S,
    sleep: Sleep = asyncio.sleep,
    out: Callable[[str], None] = print,
) -> list[CheckResult]:
    """Run every check in turn, print one line per check, return the results.

    A check that fails unexpectedly becomes a FAIL line rather than ending the
    run: the remaining parts are still worth knowing about.
    """
    results: list[CheckResult] = []
    key: ApiKey | None = None

    async def credential() -> CheckResult:
        nonlocal key
        result, key = check_credential(api_key_loader)
        return result

    checks: list[tuple[str, Callable[[], Awaitable[CheckResult]]]] = [
        ("audio", lambda: check_audio(config, hardware, audio_timeout_s)),
        ("leds", lambda: check_leds(hardware, sleep)),
        ("button", lambda: check_button(hardware, button_timeout_s, out)),
        ("credential", credential),
        ("network", lambda: check_network(config, key, connect)),
    ]
    for name, check in checks:
        try:
            result = await check()
        except Exception as exc:
            result = CheckResult(
                name,
                False,
                f"{type(exc).__name__}: {exc}",
                "unexpected; run again with device.log_level = debug",
            )
        out(result.line())
        results.append(result)
    return results


__all__ = [
    "CheckResult",
    "ToneReport",
    "analyse_tone",
    "open_connection",
    "run_selftest",
    "selftest_exit_code",
    "tone_signal",
]
