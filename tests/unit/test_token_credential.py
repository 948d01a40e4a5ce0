"""The device's own credential for realtime.token_url: no API key on the device at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import Config, with_overrides
from device.credentials import load_api_key
from device.errors import CredentialError

DEVICE_TOKEN = "dev.kitchen-speaker:Zk2Qv8rT1pX"  # a backend's token: any shape
API_KEY = "sk-proj-TEST" + "x" * 40
URL = "https://backend.example/speaker/token"


def configured(token_file: Path, url: str = URL) -> Config:
    return with_overrides(Config(), realtime={"token_url": url, "token_auth_file": str(token_file)})


def test_the_token_file_is_the_credential_and_no_api_key_is_looked_for(tmp_path: Path) -> None:
    token_file = tmp_path / "device-token"
    token_file.write_text(DEVICE_TOKEN + "\n")
    found, warnings = load_api_key(configured(token_file), {"OPENAI_API_KEY": API_KEY})
    assert found.secret.reveal() == DEVICE_TOKEN
    assert "realtime.token_auth_file" in found.source
    assert warnings == []


def test_without_a_token_url_the_token_file_is_not_used(tmp_path: Path) -> None:
    token_file = tmp_path / "device-token"
    token_file.write_text(DEVICE_TOKEN)
    found, _ = load_api_key(configured(token_file, url=""), {"OPENAI_API_KEY": API_KEY})
    assert found.secret.reveal() == API_KEY


def test_with_a_token_url_but_no_token_file_the_api_key_goes_to_the_token_url() -> None:
    config = with_overrides(Config(), realtime={"token_url": URL})
    found, _ = load_api_key(config, {"OPENAI_API_KEY": API_KEY})
    assert found.secret.reveal() == API_KEY


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("two words", "without spaces"),
        ("short", "at least 8"),
        ("line-one\nline-two", "without spaces"),
    ],
)
def test_a_bad_token_file_is_a_credential_error_that_never_shows_it(
    tmp_path: Path, content: str | None, words: str
) -> None:
    token_file = tmp_path / "device-token"
    if content is not None:
        token_file.write_text(content)
    with pytest.raises(CredentialError) as caught:
        load_api_key(configured(token_file), {})
    message = str(caught.value)
    assert words in message and str(token_file) in message
    for part in (content or "").split():
        assert part not in message
