"""Where the API key comes from, every way that can fail, and that it never leaks."""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
from pathlib import Path

import pytest

from device.config import Config, with_overrides
from device.credentials import CREDENTIAL_NAME, ApiKey, Secret, load_api_key
from device.errors import CredentialError

KEY = "sk-proj-TEST" + "x" * 40
OTHER_KEY = "sk-TESTother" + "y" * 40
EPHEMERAL = "ek_TEST" + "z" * 30
NOT_A_KEY = "hunter2-my-bank-password"
root_can_read_anything = pytest.mark.skipif(
    os.geteuid() == 0, reason="root can read a file whatever its mode"
)


def with_key_file(path: Path) -> Config:
    return with_overrides(Config(), realtime={"api_key_file": str(path)})


def credential(tmp_path: Path, content: str | bytes) -> dict[str, str]:
    """An environment whose systemd credential directory holds ``content``."""
    directory = tmp_path / "credentials"
    directory.mkdir()
    path = directory / CREDENTIAL_NAME
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return {"CREDENTIALS_DIRECTORY": str(directory)}


def failure(config: Config, env: dict[str, str], *secrets: str) -> str:
    """The message of the CredentialError, checked to hold none of ``secrets``."""
    with pytest.raises(CredentialError) as caught:
        load_api_key(config, env)
    message = str(caught.value)
    for secret in secrets:
        assert secret not in message
        assert secret not in repr(caught.value)
    assert "\n" not in message
    return message


# --- Secret -------------------------------------------------------------------------


def test_secret_never_shows_its_value() -> None:
    secret = Secret(KEY)
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "Secret('***')"
    assert f"{secret}" == "Secret('***')"
    assert f"{secret!r:>40}".strip() == "Secret('***')"
    assert format(secret, "s") == "Secret('***')"
    assert "%s %r" % (secret, secret) == "Secret('***') Secret('***')"  # noqa: UP031 (logging style)
    assert KEY not in repr([secret, {"k": secret}])
    assert secret.reveal() == KEY


def test_secret_equality_is_on_the_value() -> None:
    assert Secret(KEY) == Secret(KEY)
    assert Secret(KEY) != Secret(OTHER_KEY)
    assert Secret(KEY) != KEY  # not equal to the bare string
    assert hash(Secret(KEY)) == hash(Secret(KEY))
    assert len({Secret(KEY), Secret(KEY)}) == 1


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_secret_cannot_be_pickled(protocol: int) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(KEY), protocol=protocol)
    with pytest.raises(TypeError):
        pickle.dumps(ApiKey(Secret(KEY), "test"), protocol=protocol)


def test_secret_is_immutable_and_copies_are_itself() -> None:
    secret = Secret(KEY)
    with pytest.raises(AttributeError):
        secret._value = OTHER_KEY
    with pytest.raises(AttributeError):
        del secret._value
    assert copy.copy(secret) is secret
    assert copy.deepcopy(secret) is secret
    assert not hasattr(secret, "__dict__")


def test_secret_holds_only_strings() -> None:
    with pytest.raises(TypeError):
        Secret(KEY.encode())  # type: ignore[arg-type]


def test_api_key_repr_and_asdict_hide_the_value() -> None:
    api_key = ApiKey(Secret(KEY), "systemd credential /run/credentials/x/openai-api-key")
    assert KEY not in repr(api_key)
    assert "Secret('***')" in repr(api_key)
    assert KEY not in repr(dataclasses.asdict(api_key))


# --- where the key comes from -------------------------------------------------------


def test_credential_name() -> None:
    assert CREDENTIAL_NAME == "openai-api-key"


def test_systemd_credential_comes_first(tmp_path: Path) -> None:
    env = credential(tmp_path, KEY + "\n")
    key_file = tmp_path / "key"
    key_file.write_text(OTHER_KEY)
    env["OPENAI_API_KEY"] = OTHER_KEY
    api_key, warnings = load_api_key(with_key_file(key_file), env)
    assert api_key.secret == Secret(KEY)
    path = Path(env["CREDENTIALS_DIRECTORY"]) / "openai-api-key"
    assert api_key.source == f"systemd credential {path}"
    assert warnings == []


def test_key_file_comes_second(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"  {KEY}\r\n")
    empty_credentials = tmp_path / "creds"
    empty_credentials.mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(empty_credentials), "OPENAI_API_KEY": OTHER_KEY}
    api_key, warnings = load_api_key(with_key_file(key_file), env)
    assert api_key.secret.reveal() == KEY  # whitespace and newline stripped
    assert str(key_file) in api_key.source
    assert "realtime.api_key_file" in api_key.source
    assert warnings == []


def test_environment_comes_last_with_a_warning() -> None:
    api_key, warnings = load_api_key(Config(), {"OPENAI_API_KEY": f" {KEY}\n"})
    assert api_key.secret.reveal() == KEY
    assert api_key.source == "environment variable OPENAI_API_KEY"
    assert len(warnings) == 1
    assert "development only" in warnings[0]
    assert "systemd-creds encrypt --name=openai-api-key" in warnings[0]
    assert "LoadCredentialEncrypted=openai-api-key" in warnings[0]
    assert KEY not in warnings[0]


def test_ephemeral_key_is_accepted_with_a_warning(tmp_path: Path) -> None:
    api_key, warnings = load_api_key(Config(), credential(tmp_path, EPHEMERAL))
    assert api_key.secret.reveal() == EPHEMERAL
    assert any("ephemeral" in w for w in warnings)
    assert not any(EPHEMERAL in w for w in warnings)


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    api_key, _ = load_api_key(Config(), credential(tmp_path, b"\xef\xbb\xbf" + KEY.encode()))
    assert api_key.secret.reveal() == KEY


# --- failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [{}, {"OPENAI_API_KEY": ""}, {"OPENAI_API_KEY": "  \n"}, {"CREDENTIALS_DIRECTORY": ""}],
)
def test_missing_everywhere_names_all_three_places_and_the_fix(env: dict[str, str]) -> None:
    message = failure(Config(), env)
    assert message.startswith("no OpenAI API key found")
    assert "systemd credential openai-api-key ($CREDENTIALS_DIRECTORY is not set)" in message
    assert "realtime.api_key_file (not set)" in message
    assert "$OPENAI_API_KEY (not set)" in message
    assert "systemd-creds encrypt --name=openai-api-key" in message


def test_missing_everywhere_with_a_credential_directory_names_the_path(tmp_path: Path) -> None:
    directory = tmp_path / "creds"
    directory.mkdir()
    message = failure(Config(), {"CREDENTIALS_DIRECTORY": str(directory)})
    assert f"systemd credential {directory / 'openai-api-key'} (does not exist)" in message


def test_configured_key_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "missing-key"
    message = failure(with_key_file(key_file), {"OPENAI_API_KEY": KEY}, KEY)
    assert message.startswith(f"key file {key_file} (realtime.api_key_file) does not exist")


@pytest.mark.parametrize("content", ["", "\n", "  \r\n\t"])
def test_empty_credential(tmp_path: Path, content: str) -> None:
    env = credential(tmp_path, content)
    path = Path(env["CREDENTIALS_DIRECTORY"]) / "openai-api-key"
    assert failure(Config(), env) == f"systemd credential {path} is empty; write the key into it"


def test_empty_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("")
    message = failure(with_key_file(key_file), {})
    assert message == f"key file {key_file} (realtime.api_key_file) is empty; write the key into it"


def test_credential_that_is_a_directory(tmp_path: Path) -> None:
    directory = tmp_path / "creds"
    (directory / "openai-api-key").mkdir(parents=True)
    message = failure(Config(), {"CREDENTIALS_DIRECTORY": str(directory)})
    assert str(directory / "openai-api-key") in message
    assert "is a directory" in message


def test_key_file_that_is_a_directory(tmp_path: Path) -> None:
    message = failure(with_key_file(tmp_path), {})
    assert message.startswith(f"key file {tmp_path} (realtime.api_key_file) is a directory")


@root_can_read_anything
def test_unreadable_credential(tmp_path: Path) -> None:
    env = credential(tmp_path, KEY)
    path = Path(env["CREDENTIALS_DIRECTORY"]) / "openai-api-key"
    path.chmod(0)
    try:
        message = failure(Config(), env, KEY)
    finally:
        path.chmod(0o600)
    assert message.startswith(f"systemd credential {path} cannot be read (permission denied)")


@root_can_read_anything
def test_unreadable_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    key_file.chmod(0)
    try:
        message = failure(with_key_file(key_file), {}, KEY)
    finally:
        key_file.chmod(0o600)
    assert "(realtime.api_key_file) cannot be read (permission denied)" in message


def test_not_utf8(tmp_path: Path) -> None:
    content = b"sk-\xff\xfe" + b"x" * 20
    env = credential(tmp_path, content)
    message = failure(Config(), env, "xxxxxxxxxx")
    assert message.endswith("is not UTF-8 text, so it does not hold a key")
    assert str(Path(env["CREDENTIALS_DIRECTORY"]) / "openai-api-key") in message


def test_oversized_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "x" * 5000)
    message = failure(with_key_file(key_file), {}, KEY)
    assert "is larger than 4096 bytes" in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (NOT_A_KEY, "does not hold an OpenAI API key (one starting with sk- or ek_)"),
        ("sk-with spaces inside", "does not hold an OpenAI API key (one starting with sk- or ek_)"),
        ("Bearer " + KEY, "does not hold an OpenAI API key (one starting with sk- or ek_)"),
        (f"OPENAI_API_KEY={KEY}", "looks like NAME=value; it must hold the key alone"),
        (f"{KEY}\n{OTHER_KEY}\n", "holds more than one line; it must hold the key alone"),
    ],
)
def test_file_that_does_not_hold_a_key_is_refused_without_showing_it(
    tmp_path: Path, content: str, reason: str
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(content)
    message = failure(with_key_file(key_file), {}, content.strip(), KEY, OTHER_KEY, NOT_A_KEY)
    assert message == f"key file {key_file} (realtime.api_key_file) {reason}"


def test_environment_value_that_is_not_a_key(tmp_path: Path) -> None:
    message = failure(Config(), {"OPENAI_API_KEY": NOT_A_KEY}, NOT_A_KEY)
    assert message.startswith("$OPENAI_API_KEY does not hold an OpenAI API key")


def test_a_loaded_key_never_appears_in_what_gets_logged(tmp_path: Path) -> None:
    for env in (credential(tmp_path, KEY), {"OPENAI_API_KEY": KEY}):
        result = load_api_key(Config(), env)
        assert KEY not in repr(result)
        assert KEY not in str(result)
        assert all(KEY not in warning for warning in result[1])
