"""The config is validated once at start, so every bad input must fail here, clearly."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from device import config as config_module
from device.config import (
    DEFAULT_CONFIG_PATH,
    DEPRECATED_MODELS,
    AudioConfig,
    Config,
    CostConfig,
    DeviceConfig,
    RealtimeConfig,
    ToolsConfig,
    VadConfig,
    config_from_dict,
    config_warnings,
    describe,
    load_config,
    resolve_config_path,
    with_overrides,
)
from device.config_camera import CameraConfig
from device.config_link import LinkConfig
from device.config_listen import ListenConfig
from device.config_mcp import McpConfig
from device.config_session import TurnConfig
from device.config_ui import ButtonsConfig, LedsConfig, SoundsConfig
from device.cost import DEFAULT_PRICES, PRICE_KEYS, Prices, price_for
from device.errors import ConfigError

SOURCE = "/etc/edgevoice/edgevoice.toml"
SECTIONS = {
    "device": DeviceConfig,
    "audio": AudioConfig,
    "vad": VadConfig,
    "realtime": RealtimeConfig,
    "turn": TurnConfig,
    "listen": ListenConfig,
    "cost": CostConfig,
    "tools": ToolsConfig,
    "camera": CameraConfig,
    "buttons": ButtonsConfig,
    "sounds": SoundsConfig,
    "leds": LedsConfig,
    "link": LinkConfig,
    "mcp": McpConfig,
}
FAKE_KEY = "sk-test-" + "Q" * 40


def problem(data: dict[str, Any]) -> str:
    """The one-line message for ``data``, which must be rejected."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, SOURCE)
    return str(caught.value)


def one(section: str, key: str, value: Any) -> str:
    return problem({section: {key: value}})


def write(tmp_path: Path, text: str | bytes, name: str = "edgevoice.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def sample_path() -> Path:
    return Path(str(resources.files("device") / "data" / "edgevoice.sample.toml"))


# --- defaults and the sample -------------------------------------------------------


def test_no_file_gives_the_documented_defaults() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.source is None
    assert config.device.state_dir == Path("/var/lib/edgevoice")
    assert config.audio.block_ms == 20
    assert config.realtime.model == "gpt-realtime-1.5"
    assert config.realtime.voice == "marin"
    assert config.realtime.api_key_file is None
    assert config.realtime.connect_timeout_s == 10.0


def test_sample_loads_to_exactly_the_defaults() -> None:
    config = load_config(sample_path())
    assert config.source == sample_path()
    assert dataclasses.replace(config, source=None) == Config()


def test_sample_names_every_key_so_it_documents_them_all() -> None:
    data = tomllib.loads(sample_path().read_text(encoding="utf-8"))
    assert list(data) == list(SECTIONS)
    for name, cls in SECTIONS.items():
        assert list(data[name]) == [f.name for f in dataclasses.fields(cls)], name


def test_sample_comments_every_key() -> None:
    lines = sample_path().read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[number - 1].startswith("#"), f"no comment above: {line}"


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.audio.block_ms = 40  # type: ignore[misc]


def test_a_full_valid_file_gives_typed_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [device]
        hardware = "fake"
        board = "respeaker-4mic-array"
        state_dir = "/srv/edgevoice"
        log_level = "debug"
        [audio]
        input_device = "seeed-2mic"
        block_ms = 10
        mic_channel = 0
        send_chunk_ms = 200
        volume_percent = 0
        [vad]
        aggressiveness = 3
        start_ms = 10
        pre_roll_ms = 0
        hangover_ms = 5000
        [realtime]
        url = "ws://127.0.0.1:8765/v1/realtime"
        model = "gpt-realtime-2025-08-28"
        voice = "cedar"
        instructions = \"\"\"Be brief.
        Be kind.\"\"\"
        api_key_file = "/etc/edgevoice/key"
        max_message_mib = 64
        connect_timeout_s = 5
        """,
    )
    config = load_config(path)
    assert config.source == path
    assert config.device == DeviceConfig(
        "fake", "respeaker-4mic-array", Path("/srv/edgevoice"), "debug"
    )
    assert config.audio == AudioConfig("seeed-2mic", "", 10, 0, 200, 0)
    assert config.vad == VadConfig(3, 10, 0, 5000)
    assert config.realtime.api_key_file == Path("/etc/edgevoice/key")
    assert config.realtime.instructions == "Be brief.\n        Be kind."
    # An integer is fine where a float is expected, and becomes a float.
    assert config.realtime.connect_timeout_s == 5.0
    assert isinstance(config.realtime.connect_timeout_s, float)


def test_error_is_one_line_with_file_key_reason_and_allowed_values() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"realtime": {"voice": "bob"}}, SOURCE)
    error = caught.value
    assert str(error) == (
        '/etc/edgevoice/edgevoice.toml: realtime.voice: "bob" is not a voice; allowed: '
        "alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar"
    )
    assert (error.file, error.key) == (SOURCE, "realtime.voice")
    assert "\n" not in str(error)


# --- wrong types --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("device", "hardware", 1, "device.hardware: expected a string, got an integer (1)"),
        ("device", "board", True, "device.board: expected a string, got a boolean (true)"),
        ("device", "state_dir", 3.5, "device.state_dir: expected a string, got a float (3.5)"),
        ("device", "log_level", ["info"], "device.log_level: expected a string, got an array"),
        ("audio", "input_device", {"a": 1}, "audio.input_device: expected a string, got a table"),
        ("audio", "block_ms", True, "audio.block_ms: expected an integer, got a boolean (true)"),
        ("audio", "block_ms", 20.0, "audio.block_ms: expected an integer, got a float (20.0)"),
        ("audio", "mic_channel", False, "expected an integer, got a boolean (false)"),
        ("audio", "send_chunk_ms", "40", 'expected an integer, got a string ("40")'),
        ("audio", "volume_percent", 70.5, "expected an integer, got a float (70.5)"),
        (
            "vad",
            "aggressiveness",
            "2",
            'vad.aggressiveness: expected an integer, got a string ("2")',
        ),
        ("vad", "start_ms", [60], "vad.start_ms: expected an integer, got an array"),
        ("vad", "pre_roll_ms", True, "expected an integer, got a boolean"),
        ("vad", "hangover_ms", 800.0, "expected an integer, got a float"),
        ("realtime", "url", 1, "realtime.url: expected a string, got an integer"),
        ("realtime", "model", 1.5, "realtime.model: expected a string, got a float (1.5)"),
        ("realtime", "voice", {}, "realtime.voice: expected a string, got a table"),
        ("realtime", "instructions", ["x"], "expected a string, got an array"),
        (
            "realtime",
            "api_key_file",
            False,
            "realtime.api_key_file: expected a string, got a boolean",
        ),
        ("realtime", "max_message_mib", 16.0, "expected an integer, got a float (16.0)"),
        ("realtime", "connect_timeout_s", True, "expected a number, got a boolean (true)"),
        ("realtime", "connect_timeout_s", "10", 'expected a number, got a string ("10")'),
    ],
)
def test_wrong_type_names_expected_and_got(
    section: str, key: str, value: Any, message: str
) -> None:
    text = one(section, key, value)
    assert text.startswith(f"{SOURCE}: {section}.{key}: ")
    assert message in text


@pytest.mark.parametrize("name", list(SECTIONS))
def test_a_section_that_is_not_a_table(name: str) -> None:
    assert problem({name: 3}) == f"{SOURCE}: {name}: expected a table [{name}], got an integer (3)"


def test_data_that_is_not_a_table() -> None:
    with pytest.raises(ConfigError, match="expected a table of sections, got an array"):
        config_from_dict([], SOURCE)  # type: ignore[arg-type]


# --- ranges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "good", "bad", "allowed"),
    [
        (
            "audio",
            "mic_channel",
            [-1, 0, 15],
            [-2, 16],
            "-1 (the board's first mic channel) or 0..15",
        ),
        ("audio", "send_chunk_ms", [20, 200, 130], [10, 210, 0], "20..200 in steps of 10"),
        ("audio", "volume_percent", [0, 100], [-1, 101], "0..100"),
        ("vad", "aggressiveness", [0, 3], [-1, 4], "0..3"),
        ("vad", "start_ms", [10, 500], [0, 510], "10..500 in steps of 10"),
        ("vad", "pre_roll_ms", [0, 1000], [-10, 1010], "0..1000 in steps of 10"),
        ("vad", "hangover_ms", [0, 5000], [-10, 5010], "0..5000 in steps of 10"),
        ("realtime", "max_message_mib", [1, 64], [0, 65], "1..64"),
        ("realtime", "connect_timeout_s", [1, 120, 0.5 + 1], [0.5, 120.5, 0], "1..120"),
    ],
)
def test_out_of_range_names_the_range(
    section: str, key: str, good: list[Any], bad: list[Any], allowed: str
) -> None:
    for value in good:
        config = config_from_dict({section: {key: value}}, SOURCE)
        assert getattr(getattr(config, section), key) == value
    for value in bad:
        assert one(section, key, value) == (
            f"{SOURCE}: {section}.{key}: {value} is out of range; allowed: {allowed}"
        )


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("audio", "send_chunk_ms", 45),
        ("vad", "start_ms", 65),
        ("vad", "pre_roll_ms", 5),
        ("vad", "hangover_ms", 801),
    ],
)
def test_millisecond_keys_must_be_multiples_of_10(section: str, key: str, value: int) -> None:
    assert f"{section}.{key}: {value} is not a multiple of 10; allowed: " in one(
        section, key, value
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_timeout_rejects_non_finite_numbers(value: float) -> None:
    assert "realtime.connect_timeout_s: " in one("realtime", "connect_timeout_s", value)
    assert "is out of range; allowed: 1..120" in one("realtime", "connect_timeout_s", value)


# --- choices, names, paths, URLs ----------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("device", "hardware", "virtual", '"virtual" is not a hardware kind; allowed: real, fake'),
        (
            "device",
            "log_level",
            "INFO",
            '"INFO" is not a log level; allowed: debug, info, warning, error',
        ),
        ("audio", "block_ms", 25, "25 is not a block size in ms; allowed: 10, 20, 40"),
        ("realtime", "voice", "Marin", '"Marin" is not a voice; allowed: alloy, ash'),
    ],
)
def test_value_outside_a_choice_lists_the_choices(
    section: str, key: str, value: Any, message: str
) -> None:
    assert one(section, key, value).startswith(f"{SOURCE}: {section}.{key}: {message}")


@pytest.mark.parametrize("value", ["fake", "real"])
def test_hardware_kinds(value: str) -> None:
    assert config_from_dict({"device": {"hardware": value}}, SOURCE).device.hardware == value


@pytest.mark.parametrize(
    "voice",
    ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"],
)
def test_every_voice_is_accepted(voice: str) -> None:
    assert config_from_dict({"realtime": {"voice": voice}}, SOURCE).realtime.voice == voice


@pytest.mark.parametrize("board", ["auto", "respeaker-2mic", "respeaker-6mic", "usb-array-v2"])
def test_board_names_accepted(board: str) -> None:
    assert config_from_dict({"device": {"board": board}}, SOURCE).device.board == board


@pytest.mark.parametrize("board", ["", "ReSpeaker", "two_mic", "a b"])
def test_board_names_rejected(board: str) -> None:
    assert "device.board: " in one("device", "board", board)
    assert "allowed: auto or a board profile ([a-z0-9-])" in one("device", "board", board)


def test_board_name_length_is_bounded() -> None:
    assert "device.board: has 65 characters" in one("device", "board", "x" * 65)


@pytest.mark.parametrize(
    "model", ["gpt-realtime", "gpt-realtime-2025-08-28", "gpt-realtime-2.1-mini"]
)
def test_model_names_accepted(model: str) -> None:
    assert config_from_dict({"realtime": {"model": model}}, SOURCE).realtime.model == model


@pytest.mark.parametrize("model", ["", "gpt realtime", "gpt/realtime", "gpt-realtime?x=1"])
def test_model_names_rejected(model: str) -> None:
    assert "realtime.model: " in one("realtime", "model", model)
    assert "is not a valid name" in one("realtime", "model", model)


@pytest.mark.parametrize("value", ["var/lib/edgevoice", "", "./state", "~/edgevoice"])
def test_state_dir_must_be_absolute(value: str) -> None:
    assert "device.state_dir: " in one("device", "state_dir", value)
    assert "is not an absolute path; allowed: an absolute path" in one("device", "state_dir", value)


def test_api_key_file_empty_means_none_else_absolute() -> None:
    assert (
        config_from_dict({"realtime": {"api_key_file": ""}}, SOURCE).realtime.api_key_file is None
    )
    set_ = config_from_dict({"realtime": {"api_key_file": "/etc/edgevoice/key"}}, SOURCE)
    assert set_.realtime.api_key_file == Path("/etc/edgevoice/key")
    assert 'allowed: "" for none, or an absolute path' in one("realtime", "api_key_file", "key")


def test_a_key_pasted_where_a_path_belongs_is_not_echoed() -> None:
    text = one("realtime", "api_key_file", FAKE_KEY)
    assert "realtime.api_key_file: " in text
    assert "looks like an API key" in text
    assert FAKE_KEY not in text
    assert "sk-" not in problem({"realtime": {"voice": FAKE_KEY}})
    assert "sk-" not in problem({"realtime": {"api_key": FAKE_KEY}})
    assert "sk-" not in problem({"realtime": {"voice": f"Bearer {FAKE_KEY}"}})


def test_a_password_in_the_url_is_not_echoed() -> None:
    for url in ("wss://me:hunter2pass@api.openai.com/v1", "https://me:hunter2pass@host:99999/"):
        text = one("realtime", "url", url)
        assert "must not hold a user name or password" in text
        assert "hunter2pass" not in text


def test_a_key_file_may_have_any_absolute_name() -> None:
    path = "/etc/edgevoice/sk-project-key-file"
    config = config_from_dict({"realtime": {"api_key_file": path}}, SOURCE)
    assert config.realtime.api_key_file == Path(path)


@pytest.mark.parametrize(
    "url",
    [
        "wss://api.openai.com/v1/realtime",
        "ws://127.0.0.1:8765/v1/realtime",
        "ws://[::1]:8765/v1/realtime",
        "wss://proxy.example.net",
    ],
)
def test_urls_accepted(url: str) -> None:
    assert config_from_dict({"realtime": {"url": url}}, SOURCE).realtime.url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://api.openai.com/v1/realtime", "must start with wss://"),
        ("api.openai.com/v1/realtime", "must start with wss://"),
        ("wss://", "has no host"),
        ("wss:///v1/realtime", "has no host"),
        ("wss://api.openai.com/v1/realtime?model=gpt-realtime", "must not have a query string"),
        ("wss://api.openai.com/v1/realtime#x", "or fragment"),
        ("wss://api.openai.com:99999/v1/realtime", "is not a valid URL"),
        ("wss://[::1/v1/realtime", "is not a valid URL"),
        ("wss://user:pw@api.openai.com/v1/realtime", "must not hold a user name or password"),
        ("", "is not a URL"),
        ("wss://api.openai.com/v1/real time", "is not a URL"),
    ],
)
def test_urls_rejected(url: str, message: str) -> None:
    text = one("realtime", "url", url)
    assert text.startswith(f"{SOURCE}: realtime.url: ")
    assert message in text


def test_instructions_length_limit_without_echoing_the_text() -> None:
    long_ok = "a" * 16000
    assert (
        config_from_dict({"realtime": {"instructions": long_ok}}, SOURCE).realtime.instructions
        == long_ok
    )
    text = one("realtime", "instructions", "b" * 16001)
    assert text == f"{SOURCE}: realtime.instructions: has 16001 characters; allowed: at most 16000"


# --- unknown names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"realtym": {}}, "realtym: unknown section; did you mean [realtime]?"),
        ({"Audio": {}}, "Audio: unknown section; did you mean [audio]?"),
        (
            {"zzz": {}},
            "zzz: unknown section; known: device, audio, vad, realtime, turn, listen, cost, tools, "
            "camera, "
            "buttons, sounds, leds, link, mcp",
        ),
        (
            {"audio": {"block_size_ms": 20}},
            "audio.block_size_ms: unknown key; did you mean audio.block_ms?",
        ),
        ({"vad": {"hangover": 800}}, "vad.hangover: unknown key; did you mean vad.hangover_ms?"),
        (
            {"realtime": {"voise": "ash"}},
            "realtime.voise: unknown key; did you mean realtime.voice?",
        ),
        (
            {"audio": {"aggressiveness": 2}},
            "audio.aggressiveness: unknown key in [audio]; aggressiveness belongs in [vad]",
        ),
        (
            {"device": {"qqq": 1}},
            "device.qqq: unknown key; known keys: hardware, board, state_dir, log_level",
        ),
    ],
)
def test_unknown_names_are_reported_with_a_suggestion(data: dict[str, Any], message: str) -> None:
    assert problem(data) == f"{SOURCE}: {message}"


def test_first_problem_wins() -> None:
    assert "audio.block_ms" in problem({"audio": {"block_ms": 25, "volume_percent": 300}})
    assert "audio.volume_percent" in problem({"audio": {"volume_percent": 300, "block_ms": 25}})
    # An unknown section anywhere is reported before values in known sections.
    assert "realtym" in problem({"audio": {"block_ms": 25}, "realtym": {}})


# --- loading files ------------------------------------------------------------------


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert load_config(path) == Config(source=path)


def test_a_bad_value_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[audio]\nblock_ms = 25\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (
        str(caught.value)
        == f"{path}: audio.block_ms: 25 is not a block size in ms; allowed: 10, 20, 40"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: does not exist"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a directory, not a config file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file whatever its mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[audio]\n")
    path.chmod(0)
    try:
        with pytest.raises(ConfigError) as caught:
            load_config(path)
    finally:
        path.chmod(0o600)
    assert str(caught.value) == f"{path}: cannot be read (permission denied)"


def test_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, b'[device]\nboard = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: is not UTF-8 text (byte 0xe9 on line 2)"


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf[audio]\nblock_ms = 40\n")
    assert load_config(path).audio.block_ms == 40


def test_malformed_toml_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[device]\nhardware = "fake"\n[audio]\nblock_ms = = 20\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: malformed TOML at line 4, column 12: Invalid value"


def test_malformed_toml_at_end_of_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[realtime]\nvoice = "marin')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: malformed TOML: ")
    assert "at the end of the file" in str(caught.value)


def test_duplicate_section_is_malformed(tmp_path: Path) -> None:
    path = write(tmp_path, "[audio]\n[audio]\n")
    with pytest.raises(ConfigError, match="malformed TOML at line 2"):
        load_config(path)


def test_oversized_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# " + "x" * config_module.MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="is larger than 1024 KiB"):
        load_config(path)


# --- which file ---------------------------------------------------------------------


@pytest.fixture
def default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "etc" / "edgevoice.toml"
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", path)
    return path


def test_default_config_path_is_under_etc() -> None:
    assert str(DEFAULT_CONFIG_PATH) == "/etc/edgevoice/edgevoice.toml"


def test_cli_path_wins_even_when_missing(default_path: Path, tmp_path: Path) -> None:
    default_path.parent.mkdir()
    default_path.write_text("")
    cli = tmp_path / "missing.toml"
    env = {"EDGEVOICE_CONFIG": str(tmp_path / "env.toml")}
    assert resolve_config_path(cli, env) == (cli, True)


def test_env_path_comes_next(default_path: Path, tmp_path: Path) -> None:
    default_path.parent.mkdir()
    default_path.write_text("")
    env = {"EDGEVOICE_CONFIG": str(tmp_path / "env.toml")}
    assert resolve_config_path(None, env) == (tmp_path / "env.toml", True)


def test_empty_env_is_unset(default_path: Path) -> None:
    assert resolve_config_path(None, {"EDGEVOICE_CONFIG": ""}) == (None, False)


def test_default_path_used_only_when_it_exists(default_path: Path) -> None:
    assert resolve_config_path(None, {}) == (None, False)
    default_path.parent.mkdir()
    default_path.write_text("")
    assert resolve_config_path(None, {}) == (default_path, False)


# --- overrides ----------------------------------------------------------------------


def test_overrides_replace_only_the_named_keys(tmp_path: Path) -> None:
    path = write(tmp_path, '[audio]\nblock_ms = 40\n[realtime]\nvoice = "ash"\n')
    base = load_config(path)
    config = with_overrides(
        base, realtime={"url": "ws://127.0.0.1:1234/v1/realtime"}, device={"hardware": "fake"}
    )
    assert config.realtime.url == "ws://127.0.0.1:1234/v1/realtime"
    assert config.device.hardware == "fake"
    assert config.realtime.voice == "ash"
    assert config.audio.block_ms == 40
    assert config.source == path
    assert base.device.hardware == "real"


def test_no_overrides_round_trips_every_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[device]\nstate_dir = "/srv/x"\n'
        '[realtime]\napi_key_file = "/k"\nconnect_timeout_s = 2.5\n',
    )
    config = load_config(path)
    assert with_overrides(config) == config
    assert with_overrides(Config()) == Config()


def test_overrides_take_paths_as_well_as_strings() -> None:
    config = with_overrides(Config(), device={"state_dir": Path("/srv/edgevoice")})
    assert config.device.state_dir == Path("/srv/edgevoice")
    with pytest.raises(ConfigError, match=r"device\.state_dir: .* is not an absolute path"):
        with_overrides(Config(), device={"state_dir": Path("relative")})


def test_overrides_can_clear_the_key_file() -> None:
    config = with_overrides(Config(), realtime={"api_key_file": "/k"})
    assert config.realtime.api_key_file == Path("/k")
    assert with_overrides(config, realtime={"api_key_file": ""}).realtime.api_key_file is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"realtime": {"url": "http://127.0.0.1:1234"}}, "overrides: realtime.url: "),
        ({"device": {"hardware": "virtual"}}, "overrides: device.hardware: "),
        ({"vad": {"start_ms": 5}}, "overrides: vad.start_ms: 5 is out of range"),
        (
            {"audio": {"blockms": 20}},
            "overrides: audio.blockms: unknown key; did you mean audio.block_ms?",
        ),
        ({"radio": {}}, "overrides: radio: unknown section; did you mean [audio]?"),
        ({"audio": 3}, "overrides: audio: expected a table [audio], got an integer (3)"),
    ],
)
def test_overrides_are_validated_like_the_file(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        with_overrides(Config(), **overrides)
    assert str(caught.value).startswith(message)


# --- warnings and description -------------------------------------------------------


def test_defaults_have_no_warnings() -> None:
    assert config_warnings(Config()) == []


@pytest.mark.parametrize("model", list(DEPRECATED_MODELS))
def test_deprecated_model_warns_and_names_a_successor(model: str) -> None:
    warnings = config_warnings(with_overrides(Config(), realtime={"model": model}))
    assert len(warnings) == 1
    assert f'"{model}"' in warnings[0]
    assert "2027-01-20" in warnings[0]
    assert '"gpt-realtime-1.5"' in warnings[0]


def test_deprecated_models_table() -> None:
    assert dict(DEPRECATED_MODELS) == {
        "gpt-realtime": "shuts down 2027-01-20",
        "gpt-realtime-2025-08-28": "shuts down 2027-01-20",
    }


@pytest.mark.parametrize(
    ("url", "warns"),
    [
        ("ws://speaker-sim.lan:8765/v1/realtime", True),
        ("ws://127.0.0.1:8765/v1/realtime", False),
        ("ws://localhost:8765/v1/realtime", False),
        ("ws://[::1]:8765/v1/realtime", False),
        ("wss://proxy.example.net/v1/realtime", False),
    ],
)
def test_unencrypted_url_to_another_host_warns(url: str, warns: bool) -> None:
    warnings = config_warnings(with_overrides(Config(), realtime={"url": url}))
    assert any("unencrypted" in w for w in warnings) is warns


def test_world_readable_key_file_warns(tmp_path: Path) -> None:
    key_file = write(tmp_path, FAKE_KEY, "key")
    config = with_overrides(Config(), realtime={"api_key_file": str(key_file)})
    key_file.chmod(0o644)
    assert any(
        "readable by every user" in w and str(key_file) in w for w in config_warnings(config)
    )
    key_file.chmod(0o600)
    assert config_warnings(config) == []
    key_file.unlink()
    assert config_warnings(config) == []  # a missing file is reported when the key is loaded


def test_fake_hardware_is_never_silent() -> None:
    warnings = config_warnings(with_overrides(Config(), device={"hardware": "fake"}))
    assert any("fake" in w for w in warnings)


def test_describe_says_what_will_be_used(tmp_path: Path) -> None:
    path = write(tmp_path, '[device]\nboard = "respeaker-2mic"\n[realtime]\nvoice = "cedar"\n')
    text = describe(load_config(path))
    assert str(path) in text
    for expected in (
        "respeaker-2mic",
        "gpt-realtime-1.5",
        "cedar",
        "wss://api.openai.com/v1/realtime",
    ):
        assert expected in text
    assert "built-in defaults" in describe(Config())
    assert "instructions" not in describe(Config())


# --- [cost] -------------------------------------------------------------------------

GPT_REALTIME_PRICES = {
    "text_in_per_mtok": 4.0, "text_cached_per_mtok": 0.4,
    "audio_in_per_mtok": 32.0, "audio_cached_per_mtok": 0.4,
    "image_in_per_mtok": 5.0, "image_cached_per_mtok": 0.5,
    "text_out_per_mtok": 16.0, "audio_out_per_mtok": 64.0,
}  # fmt: skip


def cost_problem(cost: dict[str, Any]) -> str:
    return problem({"cost": cost})


def prices_problem(model: str, prices: Any) -> str:
    return cost_problem({"prices": {model: prices}})


def test_cost_defaults() -> None:
    cost = Config().cost
    assert cost == CostConfig()
    assert cost.daily_budget_usd == 0.0
    assert cost.currency == "USD"
    assert cost.prices == DEFAULT_PRICES
    assert list(cost.prices) == [
        "gpt-realtime", "gpt-realtime-2025-08-28", "gpt-realtime-1.5", "gpt-realtime-2",
    ]  # fmt: skip
    for model in ("gpt-realtime", "gpt-realtime-2025-08-28", "gpt-realtime-1.5"):
        assert cost.prices[model] == Prices(**GPT_REALTIME_PRICES)
    assert cost.prices["gpt-realtime-2"] == Prices(
        **{**GPT_REALTIME_PRICES, "text_out_per_mtok": 24.0}
    )


def test_the_sample_prices_the_default_model_as_built_in() -> None:
    data = tomllib.loads(sample_path().read_text(encoding="utf-8"))
    assert data["cost"]["prices"] == {"gpt-realtime-1.5": GPT_REALTIME_PRICES}
    assert list(data["cost"]["prices"]["gpt-realtime-1.5"]) == list(PRICE_KEYS)


def test_a_cost_section_from_a_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [cost]
        daily_budget_usd = 2
        currency = "EUR"
        [cost.prices."gpt-realtime-1.5"]
        text_out_per_mtok = 20
        audio_out_per_mtok = 60.5
        [cost.prices.acme-voice]
        text_in_per_mtok = 1.0
        text_cached_per_mtok = 0.1
        audio_in_per_mtok = 10.0
        audio_cached_per_mtok = 0.3
        image_in_per_mtok = 0
        image_cached_per_mtok = 0
        text_out_per_mtok = 8.0
        audio_out_per_mtok = 20.0
        """,
    )
    cost = load_config(path).cost
    assert cost.daily_budget_usd == 2.0
    assert isinstance(cost.daily_budget_usd, float)
    assert cost.currency == "EUR"
    # A table changes only the keys it names; the other models keep their prices.
    assert cost.prices["gpt-realtime-1.5"] == Prices(
        **{**GPT_REALTIME_PRICES, "text_out_per_mtok": 20.0, "audio_out_per_mtok": 60.5}
    )
    assert isinstance(cost.prices["gpt-realtime-1.5"].text_out_per_mtok, float)
    assert cost.prices["gpt-realtime"] == DEFAULT_PRICES["gpt-realtime"]
    assert cost.prices["gpt-realtime-2"] == DEFAULT_PRICES["gpt-realtime-2"]
    assert cost.prices["acme-voice"] == Prices(1.0, 0.1, 10.0, 0.3, 0.0, 0.0, 8.0, 20.0)
    assert price_for("acme-voice-2026-01-01", cost.prices) == cost.prices["acme-voice"]


def test_an_empty_model_table_keeps_the_built_in_prices() -> None:
    config = config_from_dict({"cost": {"prices": {"gpt-realtime-2": {}}}}, SOURCE)
    assert config.cost == CostConfig()


def test_a_config_with_prices_is_hashable_and_round_trips() -> None:
    config = config_from_dict(
        {"cost": {"daily_budget_usd": 1.5, "prices": {"gpt-realtime": {"text_in_per_mtok": 3}}}},
        SOURCE,
    )
    assert hash(config) == hash(with_overrides(config))
    assert with_overrides(config) == config
    assert with_overrides(Config(), cost={"daily_budget_usd": 3}).cost.daily_budget_usd == 3.0


@pytest.mark.parametrize(
    ("cost", "key", "message"),
    [
        ({"daily_budget_usd": "2"}, "cost.daily_budget_usd",
         'expected a number, got a string ("2")'),
        ({"daily_budget_usd": True}, "cost.daily_budget_usd",
         "expected a number, got a boolean (true)"),
        ({"daily_budget_usd": [2]}, "cost.daily_budget_usd",
         "expected a number, got an array ([2])"),
        ({"currency": 978}, "cost.currency", "expected a string, got an integer (978)"),
        ({"prices": 3}, "cost.prices",
         'expected a table of models, such as [cost.prices."gpt-realtime"], got an integer (3)'),
        ({"prices": {"gpt-realtime": 4.0}}, 'cost.prices."gpt-realtime"',
         'expected a table [cost.prices."gpt-realtime"], got a float (4.0)'),
        ({"prices": {"gpt-realtime": {"text_in_per_mtok": "4"}}},
         'cost.prices."gpt-realtime".text_in_per_mtok', 'expected a number, got a string ("4")'),
        ({"prices": {"gpt-realtime": {"audio_out_per_mtok": False}}},
         'cost.prices."gpt-realtime".audio_out_per_mtok',
         "expected a number, got a boolean (false)"),
    ],
)  # fmt: skip
def test_cost_values_of_the_wrong_type(cost: dict[str, Any], key: str, message: str) -> None:
    assert cost_problem(cost) == f"{SOURCE}: {key}: {message}"


@pytest.mark.parametrize("value", [-0.01, -1, float("nan"), float("inf"), float("-inf")])
def test_amounts_must_be_finite_and_not_negative(value: float) -> None:
    allowed = "is out of range; allowed: a finite number >= 0"
    assert cost_problem({"daily_budget_usd": value}) == (
        f"{SOURCE}: cost.daily_budget_usd: {value!r} {allowed}"
    )
    assert prices_problem("gpt-realtime-1.5", {"audio_in_per_mtok": value}) == (
        f'{SOURCE}: cost.prices."gpt-realtime-1.5".audio_in_per_mtok: {value!r} {allowed}'
    )


def test_zero_is_a_valid_amount() -> None:
    config = config_from_dict(
        {"cost": {"daily_budget_usd": 0, "prices": {"gpt-realtime": {"image_in_per_mtok": 0}}}},
        SOURCE,
    )
    assert config.cost.daily_budget_usd == 0.0
    assert config.cost.prices["gpt-realtime"].image_in_per_mtok == 0.0


@pytest.mark.parametrize("value", ["usd", "EURO", "", "US$", "€"])
def test_currency_is_a_three_letter_code(value: str) -> None:
    assert cost_problem({"currency": value}).startswith(f"{SOURCE}: cost.currency: ")
    assert "is not a currency code; allowed: three capital letters, such as USD or EUR" in (
        cost_problem({"currency": value})
    )


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        ({"budget": 2}, "cost.budget: unknown key; known keys: daily_budget_usd, currency, prices"),
        ({"daily_budget": 2},
         "cost.daily_budget: unknown key; did you mean cost.daily_budget_usd?"),
        ({"model": "x"}, "cost.model: unknown key in [cost]; model belongs in [realtime]"),
        ({"prices": {"gpt-realtime": {"audio_input_per_mtok": 1}}},
         'cost.prices."gpt-realtime".audio_input_per_mtok: unknown key; '
         "did you mean audio_in_per_mtok?"),
        ({"prices": {"gpt-realtime": {"zzz": 1}}},
         'cost.prices."gpt-realtime".zzz: unknown key; known keys: ' + ", ".join(PRICE_KEYS)),
        ({"prices": {"gpt-realtime": {"per mtok": 1}}},
         'cost.prices."gpt-realtime"."per mtok": unknown key; known keys: '
         + ", ".join(PRICE_KEYS)),
    ],
)  # fmt: skip
def test_unknown_cost_keys(cost: dict[str, Any], message: str) -> None:
    assert cost_problem(cost) == f"{SOURCE}: {message}"


def test_a_model_without_built_in_prices_needs_all_eight() -> None:
    partial = {"text_in_per_mtok": 1.0, "audio_out_per_mtok": 20.0}
    assert prices_problem("acme-voice", partial) == (
        f'{SOURCE}: cost.prices."acme-voice": has no built-in prices, so it needs all eight; '
        "missing: text_cached_per_mtok, audio_in_per_mtok, audio_cached_per_mtok, "
        "image_in_per_mtok, image_cached_per_mtok, text_out_per_mtok"
    )
    # Not even a snapshot of a built-in model inherits part of a table.
    assert "needs all eight" in prices_problem("gpt-realtime-1.5-2026-01-15", partial)


@pytest.mark.parametrize("model", ["", "gpt realtime", "gpt/realtime", "x" * 129])
def test_price_tables_need_model_names(model: str) -> None:
    text = prices_problem(model, GPT_REALTIME_PRICES)
    assert text.startswith(f"{SOURCE}: cost.prices.")
    assert text.endswith(": is not a model name; allowed: 1..128 letters, digits, . _ -")


def test_a_key_pasted_as_a_model_or_price_name_is_not_echoed() -> None:
    text = prices_problem(FAKE_KEY, GPT_REALTIME_PRICES)
    assert text == (
        f"{SOURCE}: cost.prices: names a model with what looks like an API key (not shown)"
    )
    text = prices_problem("gpt-realtime", {FAKE_KEY: 1})
    assert "looks like an API key" in text
    assert FAKE_KEY not in text


def test_the_first_price_problem_names_its_full_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[cost.prices."gpt-realtime-1.5"]\ntext_in_per_mtok = -4.0\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert error.key == 'cost.prices."gpt-realtime-1.5".text_in_per_mtok'
    assert str(error) == (
        f'{path}: cost.prices."gpt-realtime-1.5".text_in_per_mtok: '
        "-4.0 is out of range; allowed: a finite number >= 0"
    )


@pytest.mark.parametrize(
    "model", ["gpt-realtime-1.5-2026-01-15", "gpt-realtime-2-2026-03-01", "gpt-realtime-mini"]
)
def test_a_model_priced_by_its_family_does_not_warn(model: str) -> None:
    assert config_warnings(with_overrides(Config(), realtime={"model": model})) == []


def test_a_model_without_a_price_warns() -> None:
    config = with_overrides(Config(), realtime={"model": "acme-voice"})
    assert config_warnings(config) == [
        'realtime.model "acme-voice" has no price in [cost.prices]: its cost is not counted; '
        'add its prices as [cost.prices."acme-voice"]'
    ]
    budgeted = with_overrides(config, cost={"daily_budget_usd": 2.0})
    assert "the daily budget cannot stop it" in config_warnings(budgeted)[0]
    priced = with_overrides(config, cost={"prices": {"acme-voice": GPT_REALTIME_PRICES}})
    assert config_warnings(priced) == []


def test_describe_shows_the_budget() -> None:
    assert "budget:   none" in describe(Config())
    config = with_overrides(Config(), cost={"daily_budget_usd": 2, "currency": "EUR"})
    assert "budget:   2.00 EUR a day" in describe(config)


# --- [tools] ------------------------------------------------------------------------


def test_tools_defaults_offer_every_device_tool_but_mute() -> None:
    # a microphone muted by voice could only be unmuted with a button; "look" is
    # listed, but offered only once [camera] enabled is true
    tools = Config().tools
    assert tools.enabled == ("volume", "leds", "time", "status", "look")
    assert Config().camera.enabled is False
    assert tools.timeout_s == 5.0


def test_a_tools_section_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[tools]\nenabled = ["time", "volume"]\ntimeout_s = 2\n')
    tools = load_config(path).tools
    assert tools.enabled == ("time", "volume")
    assert tools.timeout_s == 2.0
    assert "tools:    time, volume" in describe(load_config(path))


def test_no_tools_at_all() -> None:
    config = config_from_dict({"tools": {"enabled": []}}, SOURCE)
    assert config.tools.enabled == ()
    assert "tools:    none" in describe(config)


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        (
            {"enabled": ["volume", "lights"]},
            (
                'tools.enabled[1]: "lights" is not a tool; allowed: volume, mute, leds, time, '
                "status, look"
            ),
        ),
        ({"enabled": ["time", "time"]}, 'tools.enabled[1]: "time" is listed twice'),
        (
            {"enabled": "volume"},
            'tools.enabled: expected an array of tool names, got a string ("volume")',
        ),
        ({"enabled": [3]}, "tools.enabled[0]: expected a tool name, got an integer (3)"),
        ({"timeout_s": 0}, "tools.timeout_s: 0 is out of range; allowed: 0.1..60"),
        ({"timeout_s": "5"}, 'tools.timeout_s: expected a number, got a string ("5")'),
        ({"timeout": 5}, "tools.timeout: unknown key; did you mean tools.timeout_s?"),
    ],
)
def test_bad_tools_values_name_the_key(tools: dict[str, Any], message: str) -> None:
    assert problem({"tools": tools}) == f"{SOURCE}: {message}"


def test_tools_round_trip_through_overrides() -> None:
    config = with_overrides(Config(), tools={"enabled": ["leds"]})
    assert config.tools.enabled == ("leds",)
    assert with_overrides(config) == config
    assert hash(config.tools) == hash(ToolsConfig(enabled=("leds",)))
