"""[link] and the token keys of [realtime]: defaults, accepted values, and clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from device.config import config_from_dict, load_config
from device.config_link import DEFAULT_DISCLOSURE
from device.errors import ConfigError

SOURCE = "/etc/edgevoice/edgevoice.toml"


def problem(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, SOURCE)
    return str(caught.value)


def test_defaults() -> None:
    config = load_config(None)
    link, rt = config.link, config.realtime
    assert (link.ping_interval_s, link.ping_timeout_s) == (20.0, 20.0)
    assert link.rotate_before_s == 300.0
    assert (link.reseed_turns, link.reseed_chars) == (10, 4000)
    assert link.disclosure == DEFAULT_DISCLOSURE and "AI" in link.disclosure
    assert (rt.token_url, rt.token_auth_file, rt.token_lifetime_s) == ("", None, 600)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1/realtime/client_secrets",
        "https://backend.example:8443/speaker/token?device=kitchen",
        "http://127.0.0.1:8080/v1/realtime/client_secrets",
        "http://localhost/token",
        "",
    ],
)
def test_token_urls_that_are_accepted(url: str) -> None:
    assert config_from_dict({"realtime": {"token_url": url}}, SOURCE).realtime.token_url == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://backend.example/token", "use https://"),
        ("wss://backend.example/token", "is not a URL"),
        ("https://user:pw@backend.example/token", "must not hold a user name or password"),
        ("https://backend.example/to ken", "is not a URL"),
        ("https:///token", "is not a URL"),
        ("https://backend.example:99999/token", "is not a valid URL"),
        ("https://backend.example/token#x", "fragment"),
    ],
)
def test_token_urls_that_are_refused_name_the_key(url: str, words: str) -> None:
    message = problem({"realtime": {"token_url": url}})
    assert message.startswith(f"{SOURCE}: realtime.token_url: ")
    assert words in message
    assert "pw@" not in message


def test_a_token_url_holding_a_key_is_not_echoed() -> None:
    message = problem({"realtime": {"token_url": "http://x.example/?k=sk-proj-ABCDEFGHIJKLMNOP"}})
    assert "ABCDEFGHIJKLMNOP" not in message


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"realtime": {"token_lifetime_s": 5}}, "realtime.token_lifetime_s: 5 is out of range"),
        ({"realtime": {"token_auth_file": "token.txt"}}, "realtime.token_auth_file"),
        ({"link": {"ping_interval_s": 0}}, "link.ping_interval_s"),
        ({"link": {"ping_timeout_s": "20"}}, "link.ping_timeout_s: expected a number"),
        ({"link": {"rotate_before_s": 3600}}, "link.rotate_before_s"),
        ({"link": {"reseed_turns": -1}}, "link.reseed_turns"),
        ({"link": {"reseed_chars": 1.5}}, "link.reseed_chars: expected an integer"),
        ({"link": {"disclosure": "x" * 501}}, "link.disclosure: has 501 characters"),
        ({"link": {"ping_every_s": 5}}, "link.ping_every_s: unknown key"),
    ],
)
def test_bad_values_name_the_file_and_key(data: dict[str, Any], where: str) -> None:
    message = problem(data)
    assert message.startswith(f"{SOURCE}: {where}"), message


def test_a_link_section_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "edgevoice.toml"
    path.write_text(
        '[realtime]\ntoken_url = "https://backend.example/token"\n'
        'token_auth_file = "/etc/edgevoice/device-token"\ntoken_lifetime_s = 120\n'
        '[link]\nping_interval_s = 5\nrotate_before_s = 0\ndisclosure = ""\n'
    )
    config = load_config(path)
    assert config.realtime.token_auth_file == Path("/etc/edgevoice/device-token")
    assert config.realtime.token_lifetime_s == 120
    assert (config.link.ping_interval_s, config.link.rotate_before_s) == (5.0, 0.0)
    assert config.link.disclosure == ""
