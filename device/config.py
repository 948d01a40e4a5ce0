"""Typed, frozen configuration read from one TOML file and validated once at start.

Rules of this file:

* Every key has a default, so a speaker runs with no config file at all.
* Each key is declared once, in its section dataclass, with its default and the
  rule that checks it; the rest of the daemon trusts a ``Config`` without checking.
* The first problem found raises one ``ConfigError`` naming the file, the key,
  what is wrong and what is allowed, so an installer can fix it from one journal line.
* A value that looks like an API key is never echoed back into a message.
"""

from __future__ import annotations

import difflib
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from device import config_session as session_keys
from device.config_camera import CameraConfig, camera_warnings, describe_camera
from device.config_link import TOKEN_LIFETIME_S, TOKEN_URL, LinkConfig
from device.config_listen import ListenConfig, describe_listen, listen_problem
from device.config_mcp import McpConfig, describe_mcp, mcp_warnings
from device.config_rules import (
    _abs_path,
    _choice,
    _currency,
    _expected,
    _float_range,
    _int_range,
    _integer,
    _Invalid,
    _key,
    _name_list,
    _no_api_key,
    _non_negative,
    _price_table,
    _Rule,
    _string,
    _text,
    _toml_key,
    _type_name,
    _ws_url,
)
from device.config_session import StringTable, TurnConfig
from device.config_ui import ButtonsConfig, LedsConfig, SoundsConfig
from device.cost import DEFAULT_PRICES, PriceTable, price_for
from device.device_tools import DEVICE_TOOL_NAMES
from device.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/edgevoice/edgevoice.toml")
CONFIG_ENV = "EDGEVOICE_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024  # a real config is a few kB; the bound keeps /dev/zero out

HARDWARE_KINDS = ("real", "fake")
LOG_LEVELS = ("debug", "info", "warning", "error")
BLOCK_SIZES_MS = (10, 20, 40)
AEC_BACKENDS = ("ours", "webrtc", "speex", "none")
VAD_BACKENDS = ("webrtc", "silero")
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
MAX_INSTRUCTIONS_CHARS = 16000
MAX_DEVICE_NAME_CHARS = 256
SUCCESSOR_MODEL = "gpt-realtime-1.5"
DEPRECATED_MODELS: Mapping[str, str] = MappingProxyType(
    {"gpt-realtime": "shuts down 2027-01-20", "gpt-realtime-2025-08-28": "shuts down 2027-01-20"}
)


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """[device]: which hardware to drive, where state lives, how much to log."""

    hardware: str = _key("real", _choice(_string, "hardware kind", HARDWARE_KINDS))
    """``real`` drives the HAT; ``fake`` uses the shipped fakes, for development."""
    board: str = _key("auto", _text(64, r"[a-z0-9-]+", "auto or a board profile ([a-z0-9-])"))
    """``auto`` detects the HAT; else a board profile name, when detection cannot work."""
    # RUF009 cannot see that _key returns a dataclasses.field; Path is immutable anyway.
    state_dir: Path = _key(Path("/var/lib/edgevoice"), _abs_path(optional=False))  # noqa: RUF009
    """State that survives a restart (systemd ``StateDirectory=``)."""
    log_level: str = _key("info", _choice(_string, "log level", LOG_LEVELS))


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """[audio]: which devices and channel, and how audio is cut into blocks."""

    input_device: str = _key("", _text(MAX_DEVICE_NAME_CHARS))
    """Empty: the capture device the board profile names; else a device-name substring."""
    output_device: str = _key("", _text(MAX_DEVICE_NAME_CHARS))
    block_ms: int = _key(20, _choice(_integer, "block size in ms", BLOCK_SIZES_MS))
    """Duplex callback period: shorter lowers latency, longer survives a busy Pi."""
    mic_channel: int = _key(-1, _int_range(0, 15, minus_one="the board's first mic channel"))
    send_chunk_ms: int = _key(40, _int_range(20, 200, 10))
    """Microphone audio per ``input_audio_buffer.append``: fewer frames vs. lower latency."""
    volume_percent: int = _key(70, _int_range(0, 100))
    aec: str = _key("ours", _choice(_string, "echo canceller", AEC_BACKENDS))
    """Echo cancellation in the capture loop. "none" holds the microphone while the
    speaker plays (no self-interruption, but no interrupting the device by voice)."""


@dataclass(frozen=True, slots=True)
class VadConfig:
    """[vad]: when the microphone gate opens and closes around speech."""

    aggressiveness: int = _key(2, _int_range(0, 3))
    """webrtcvad mode: 0 keeps the most speech, 3 rejects the most noise."""
    start_ms: int = _key(60, _int_range(10, 500, 10))
    """Speech needed before the gate opens, so a click does not open it."""
    pre_roll_ms: int = _key(300, _int_range(0, 1000, 10))
    """Audio kept from before the gate opened, so the first syllable is not cut."""
    hangover_ms: int = _key(800, _int_range(0, 5000, 10))
    """Silence needed before the gate closes, so a pause between words does not close it."""
    backend: str = _key("webrtc", _choice(_string, "voice detector", VAD_BACKENDS))
    """"webrtc" (webrtcvad, smoothed, with a noise-floor guard) or "silero" (needs the
    vad extra and the Silero model)."""


_DEFAULT_INSTRUCTIONS = (
    "You are the voice of a smart speaker in someone's home. "
    "Answer briefly and warmly, in the language you are spoken to."
)


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """[realtime]: where and how to reach the Realtime API."""

    url: str = _key("wss://api.openai.com/v1/realtime", _ws_url)
    """Endpoint without a query string; ``?model=`` is added from ``model``."""
    model: str = _key(
        SUCCESSOR_MODEL, _no_api_key(_text(128, r"[A-Za-z0-9._-]+", "letters, digits, . _ -"))
    )
    voice: str = _key("marin", _choice(_string, "voice", VOICES))
    """Cannot change after the first audio output of a session."""
    instructions: str = _key(_DEFAULT_INSTRUCTIONS, _text(MAX_INSTRUCTIONS_CHARS))
    api_key_file: Path | None = _key(None, _abs_path(optional=True))  # noqa: RUF009 (see above)
    """A file holding the key, for installs without systemd credentials."""
    max_message_mib: int = _key(16, _int_range(1, 64))
    """Largest WebSocket frame accepted; a long audio delta must fit in one."""
    connect_timeout_s: float = _key(10.0, _float_range(1, 120))
    token_url: str = _key("", TOKEN_URL)
    """"": the API key opens the WebSocket. Else the device fetches short-lived client
    secrets (ek_...) here and opens sessions with those (see device.tokens)."""
    token_auth_file: Path | None = _key(None, _abs_path(optional=True))  # noqa: RUF009
    """The device's own credential for token_url; None: the API key is sent there."""
    token_lifetime_s: int = _key(600, TOKEN_LIFETIME_S)
    """How long each client secret may open sessions (expires_after.seconds)."""
    # What the session is asked to do (rules and reasons: device.config_session).
    speed: float = _key(1.0, session_keys.SPEED)
    output_modality: str = _key("audio", session_keys.OUTPUT_MODALITY)
    """"text" answers in text only: nothing is played, the journal shows the reply."""
    max_output_tokens: int | str = _key("inf", session_keys.MAX_TOKENS)
    truncation: str | float = _key("auto", session_keys.TRUNCATION)
    truncation_post_instructions_tokens: int = _key(0, session_keys.TRUNCATION_TOKENS)
    prompt_id: str = _key("", session_keys.PROMPT_ID)
    prompt_version: str = _key("", session_keys.PROMPT_VERSION)
    prompt_variables: StringTable = _key(StringTable(), session_keys.PROMPT_VARIABLES)  # noqa: RUF009
    noise_reduction: str = _key("far_field", session_keys.NOISE_REDUCTION)
    """far_field: the speaker hears people across a room, not a headset microphone."""
    transcription_model: str = _key("", session_keys.TRANSCRIPTION_MODEL)
    transcription_language: str = _key("", session_keys.TRANSCRIPTION_LANGUAGE)


@dataclass(frozen=True, slots=True)
class CostConfig:
    """[cost]: what responses cost, and how much they may cost in a day."""

    daily_budget_usd: float = _key(0.0, _non_negative)
    """0: no budget; else the microphone stops streaming once a day's responses cost this."""
    currency: str = _key("USD", _currency)
    """The label on amounts in log lines; display only, nothing is converted."""
    prices: PriceTable = _key(DEFAULT_PRICES, _price_table)  # noqa: RUF009 (immutable, see above)
    """Per model, per 1M tokens; a [cost.prices."model"] table overrides the keys it names."""


DEFAULT_TOOLS = tuple(name for name in DEVICE_TOOL_NAMES if name != "mute")


@dataclass(frozen=True, slots=True)
class ToolsConfig:
    """[tools]: what the assistant may do on the speaker when asked to."""

    enabled: tuple[str, ...] = _key(DEFAULT_TOOLS, _name_list("tool", DEVICE_TOOL_NAMES))
    """The device tools the model is offered; [] offers none. "mute" is not offered by
    default: a microphone muted by voice cannot be unmuted by voice, only by a button."""
    timeout_s: float = _key(5.0, _float_range(0.1, 60))
    """How long a tool may take before the model is told it timed out."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the daemon is configured with, validated as a whole."""

    device: DeviceConfig = DeviceConfig()
    audio: AudioConfig = AudioConfig()
    vad: VadConfig = VadConfig()
    realtime: RealtimeConfig = RealtimeConfig()
    turn: TurnConfig = TurnConfig()  # noqa: RUF009 (frozen)
    listen: ListenConfig = ListenConfig()  # noqa: RUF009 (frozen)
    cost: CostConfig = CostConfig()
    tools: ToolsConfig = ToolsConfig()
    camera: CameraConfig = CameraConfig()  # noqa: RUF009 (frozen)
    buttons: ButtonsConfig = ButtonsConfig()  # noqa: RUF009 (frozen)
    sounds: SoundsConfig = SoundsConfig()  # noqa: RUF009 (frozen)
    leds: LedsConfig = LedsConfig()  # noqa: RUF009 (frozen)
    link: LinkConfig = LinkConfig()  # noqa: RUF009 (frozen)
    mcp: McpConfig = McpConfig()  # noqa: RUF009 (frozen)
    source: Path | None = None
    """The file this came from; None for the built-in defaults."""


_SECTIONS: dict[str, type] = {
    "device": DeviceConfig, "audio": AudioConfig, "vad": VadConfig, "realtime": RealtimeConfig,
    "turn": TurnConfig, "listen": ListenConfig, "cost": CostConfig, "tools": ToolsConfig,
    "camera": CameraConfig,
    "buttons": ButtonsConfig, "sounds": SoundsConfig, "leds": LedsConfig, "link": LinkConfig,
    "mcp": McpConfig,
}  # fmt: skip
# Keys that only mean something together: (key, reason) for the first problem, or None.
_ACROSS_KEYS: dict[str, Any] = {
    "realtime": session_keys.realtime_problem,
    "turn": session_keys.turn_problem,
}


def _rules(section: str) -> dict[str, _Rule]:
    return {f.name: f.metadata["rule"] for f in fields(_SECTIONS[section])}


def _suggest(name: str, known: list[str], fmt: str) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {fmt.format(close[0])}?" if close else ""


def _unknown_key(section: str, key: str) -> str:
    for other in _SECTIONS:
        if other != section and key in _rules(other):
            return f"unknown key in [{section}]; {key} belongs in [{other}]"
    known = list(_rules(section))
    hint = _suggest(key, known, section + ".{}") or f"; known keys: {', '.join(known)}"
    return f"unknown key{hint}"


def _build_section(source: str, section: str, table: Mapping[Any, Any]) -> Any:
    rules = _rules(section)
    values: dict[str, Any] = {}
    for raw_key, raw_value in table.items():
        key = str(raw_key)
        if key not in rules:  # named as written, unless it looks like a pasted API key
            raise ConfigError(source, f"{section}.{_toml_key(key)}", _unknown_key(section, key))
        try:
            values[key] = rules[key](raw_value)
        except _Invalid as problem:
            raise ConfigError(source, f"{section}.{key}{problem.where}", str(problem)) from None
    built = _SECTIONS[section](**values)
    across = _ACROSS_KEYS.get(section)
    if across is not None and (found := across(built)) is not None:
        raise ConfigError(source, f"{section}.{found[0]}", found[1])
    return built


def config_from_dict(data: Mapping[str, Any], source: str) -> Config:
    """Validate parsed TOML into a ``Config``; missing keys take their defaults.

    ``source`` only labels error messages; the result's ``source`` is None
    (``load_config`` sets it). Pure: no I/O, safe on any thread.

    Raises:
        ConfigError: for the first unknown section or key, wrong type or bad value.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(source, "", f"expected a table of sections, got {_type_name(data)}")
    for raw_name, table in data.items():
        name = str(raw_name)
        if name not in _SECTIONS:
            hint = _suggest(name, list(_SECTIONS), "[{}]") or f"; known: {', '.join(_SECTIONS)}"
            raise ConfigError(source, _toml_key(name), f"unknown section{hint}")
        if not isinstance(table, Mapping):
            raise ConfigError(source, name, str(_expected(f"a table [{name}]", table)))
    config = Config(
        **{name: _build_section(source, name, data.get(name, {})) for name in _SECTIONS}
    )
    if (problem := listen_problem(config.listen, config.turn.mode)) is not None:
        raise ConfigError(source, *problem)
    return config


def _plain(value: Any) -> Any:
    """A config value as TOML spells it (an optional path that is not set is "")."""
    if value is None or isinstance(value, Path):
        return "" if value is None else str(value)
    if isinstance(value, tuple):
        return list(value)
    return value.as_dict() if isinstance(value, PriceTable) else value


def _as_dict(config: Config) -> dict[str, dict[str, Any]]:
    """The inverse of ``config_from_dict``: TOML-shaped plain values."""
    result: dict[str, dict[str, Any]] = {}
    for name in _SECTIONS:
        section = getattr(config, name)
        result[name] = {f.name: _plain(getattr(section, f.name)) for f in fields(section)}
    return result


def with_overrides(config: Config, **sections: Mapping[str, Any]) -> Config:
    """Return ``config`` with some keys replaced, checked exactly as the file was.

    For command-line flags and tests, e.g.
    ``with_overrides(cfg, realtime={"url": "ws://127.0.0.1:1234/v1/realtime"})``.

    Raises:
        ConfigError: labelled ``overrides`` when an override is invalid.
    """
    merged: dict[str, Any] = dict(_as_dict(config))
    for name, values in sections.items():
        base = merged.get(name)
        merged[name] = {**base, **values} if base and isinstance(values, Mapping) else values
    return replace(config_from_dict(merged, "overrides"), source=config.source)


_TOML_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def _toml_problem(exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    if match := _TOML_POSITION.match(message):
        return f"malformed TOML at line {match['line']}, column {match['column']}: {match['what']}"
    return f"malformed TOML: {message.replace('at end of document', 'at the end of the file')}"


def _read_text(path: Path) -> str:
    where = str(path)
    if path.is_dir():
        raise ConfigError(where, "", "is a directory, not a config file")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(where, "", "does not exist") from None
    except PermissionError:
        raise ConfigError(where, "", "cannot be read (permission denied)") from None
    except OSError as exc:
        raise ConfigError(where, "", f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(where, "", f"is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8-sig")  # tolerate the byte-order mark some editors write
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        reason = f"is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"
        raise ConfigError(where, "", reason) from None


def load_config(path: Path | None) -> Config:
    """Read and validate the config file, or return the defaults when ``path`` is None.

    Runs once at start, on the main thread, before any hardware or socket is opened.

    Raises:
        ConfigError: the file is missing, a directory, unreadable, not UTF-8,
            malformed TOML (with line and column), or holds a bad value.
    """
    if path is None:
        return config_from_dict({}, "defaults")
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", _toml_problem(exc)) from None
    return replace(config_from_dict(data, str(path)), source=path)


def resolve_config_path(cli_path: Path | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """Pick the file: ``--config``, else ``$EDGEVOICE_CONFIG``, else the default if present.

    Returns the path (None: use the defaults) and whether it was asked for
    explicitly. A missing explicit file is the installer's mistake and must fail;
    a missing default file just means the defaults suit this speaker.
    """
    if cli_path is not None:
        return cli_path, True
    if from_env := env.get(CONFIG_ENV, ""):
        return Path(from_env), True
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH, False
    return None, False


def config_warnings(config: Config) -> list[str]:
    """Things that work today but deserve an installer's attention; logged at start."""
    warnings: list[str] = []
    realtime = config.realtime
    if realtime.model in DEPRECATED_MODELS:
        warnings.append(
            f'realtime.model "{realtime.model}" is deprecated and '
            f'{DEPRECATED_MODELS[realtime.model]}; switch to "{SUCCESSOR_MODEL}"'
        )
    url = urlsplit(realtime.url)
    host = url.hostname or ""
    if url.scheme == "ws" and not (host in ("localhost", "::1") or host.startswith("127.")):
        warnings.append(
            f"realtime.url uses ws:// to {host}: the API key and the audio "
            "would cross the network unencrypted; use wss://"
        )
    if realtime.api_key_file is not None:
        try:
            mode = realtime.api_key_file.stat().st_mode
        except OSError:
            mode = 0  # missing or unreadable: loading the key reports that
        if mode & stat.S_IROTH:
            warnings.append(
                f"realtime.api_key_file {realtime.api_key_file} is readable by every user; "
                "chmod 600 it, or install the key as the systemd credential openai-api-key"
            )
    if price_for(realtime.model, config.cost.prices) is None:
        budget = " and the daily budget cannot stop it" if config.cost.daily_budget_usd else ""
        warnings.append(
            f'realtime.model "{realtime.model}" has no price in [cost.prices]: its cost is not '
            f'counted{budget}; add its prices as [cost.prices."{realtime.model}"]'
        )
    warnings += camera_warnings(config.camera, config.device.hardware)
    warnings += mcp_warnings(config.mcp)
    warnings += session_keys.turn_warnings(config.turn, config.listen)
    if config.device.hardware == "fake":
        warnings.append("device.hardware is fake: no microphone, speaker, LEDs or buttons are used")
    return warnings


def describe(config: Config) -> str:
    """A few lines for ``edgevoice config check``: what the speaker will actually use."""
    source = str(config.source) if config.source else "built-in defaults (no config file)"
    device, realtime, cost = config.device, config.realtime, config.cost
    budget = f"{cost.daily_budget_usd:.2f} {cost.currency} a day" if cost.daily_budget_usd else ""
    tools = ", ".join(config.tools.enabled) or "none"
    return (
        f"config:   {source}\n"
        f"hardware: {device.hardware}, board {device.board}\n"
        f"model:    {realtime.model}, voice {realtime.voice}\n"
        f"url:      {realtime.url}\n"
        f"key file: {realtime.api_key_file or 'none'}\n"
        f"budget:   {budget or 'none'}\n"
        f"tools:    {tools}\n"
        f"session:  {session_keys.describe_session(realtime, config.turn)}\n"
        f"listen:   {describe_listen(config.listen)}\n"
        f"camera:   {describe_camera(config.camera)}\n"
        f"mcp:      {describe_mcp(config.mcp)}"
    )
