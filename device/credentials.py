"""The OpenAI API key: where it may come from, and a wrapper that keeps it out of logs.

Rules of this file:

* The key is looked for in this order: the systemd credential ``openai-api-key``
  (``$CREDENTIALS_DIRECTORY``), the file named by ``realtime.api_key_file``, and
  ``$OPENAI_API_KEY`` for development on a laptop.
* No message, exception or ``repr`` ever contains the key or the text of a key
  file: a wrong file could be someone's other secret.
* The key stays wrapped in ``Secret`` until the one place that sends it.
* With ``realtime.token_url`` and ``realtime.token_auth_file`` set, the device needs
  no API key at all: the credential it uses is that file's token, which only the
  token URL (the installer's backend) honours; any one-line token is accepted.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from device.config import Config
from device.errors import CredentialError

CREDENTIAL_NAME = "openai-api-key"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
API_KEY_ENV = "OPENAI_API_KEY"
MAX_KEY_FILE_BYTES = 4096  # a key is about 200 bytes; the bound keeps a wrong file's bulk out

# Standard and project keys start with sk-, ephemeral client secrets with ek_.
_KEY_SHAPE = re.compile(r"(sk-|ek_)[A-Za-z0-9_-]+")
# A backend's own device token: whatever it issues, as long as it fits in a header.
_TOKEN_SHAPE = re.compile(r"[\x21-\x7e]{8,}")

_INSTALL_HINT = (
    "install the key as a systemd credential: "
    f"systemd-creds encrypt --name={CREDENTIAL_NAME} key.txt "
    f"/etc/credstore.encrypted/{CREDENTIAL_NAME} (the unit loads it with "
    f"LoadCredentialEncrypted={CREDENTIAL_NAME})"
)


class Secret:
    """A credential that does not show itself in logs, tracebacks or pickles.

    ``repr``, ``str`` and ``format`` all give ``Secret('***')``; ``reveal()``
    is the one way to the value, so every use of it is easy to find.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The value itself, for the Authorization header and nothing else."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return repr(self)

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so a comparison does not hint at how much of a guess was right.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("a Secret cannot be changed")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("a Secret cannot be changed")

    def __reduce__(self) -> NoReturn:
        # Pickles end up in queues, caches and crash dumps; the key must not.
        raise TypeError("a Secret cannot be pickled; pass it, do not serialize it")

    def __copy__(self) -> Secret:
        return self  # immutable, so a copy is the same object

    def __deepcopy__(self, memo: object) -> Secret:
        return self


@dataclass(frozen=True)
class ApiKey:
    """The key and where it came from, so a refused key can be traced to its file."""

    secret: Secret
    source: str


def _check_shape(text: str, where: str) -> Secret:
    """Refuse anything that is not an OpenAI key, saying why without showing it."""
    if _KEY_SHAPE.fullmatch(text):
        return Secret(text)
    if "\n" in text:
        problem = "holds more than one line; it must hold the key alone"
    elif "=" in text:
        problem = "looks like NAME=value; it must hold the key alone"
    else:
        problem = "does not hold an OpenAI API key (one starting with sk- or ek_)"
    raise CredentialError(f"{where} {problem}")


def _check_token(text: str, where: str) -> Secret:
    if _TOKEN_SHAPE.fullmatch(text):
        return Secret(text)
    raise CredentialError(
        f"{where} must hold one token of at least 8 printable characters without spaces"
    )


def _read_key_file(
    path: Path, where: str, check: Callable[[str, str], Secret] = _check_shape
) -> Secret | None:
    """The key in ``path``, or None when the file does not exist."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise CredentialError(f"{where} is a directory, not a file holding the key") from None
    except PermissionError:
        raise CredentialError(
            f"{where} cannot be read (permission denied); the service user needs read access"
        ) from None
    except OSError as exc:
        raise CredentialError(f"{where} cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise CredentialError(f"{where} is larger than {MAX_KEY_FILE_BYTES} bytes; not a key")
    try:
        text = data.decode("utf-8-sig").strip()  # tolerate an editor's byte-order mark
    except UnicodeDecodeError:
        raise CredentialError(f"{where} is not UTF-8 text, so it does not hold a key") from None
    if not text:
        raise CredentialError(f"{where} is empty; write the key into it")
    return check(text, where)


def _shape_warnings(key: Secret) -> list[str]:
    if key.reveal().startswith("ek_"):
        return [
            "the API key is an ephemeral client secret (ek_...), which expires within "
            "minutes; reconnecting later will fail, use a standard key (sk-...)"
        ]
    return []


def load_api_key(config: Config, env: Mapping[str, str]) -> tuple[ApiKey, list[str]]:
    """Find the API key, in the order in the module docstring, with warnings to log.

    Called once at start on the main thread; reads at most two small files.

    Raises:
        CredentialError: no key anywhere, or a key source that is empty,
            unreadable, a directory, not UTF-8 or not an OpenAI key. The message
            names the place, never the content.
    """
    token_file = config.realtime.token_auth_file
    if config.realtime.token_url and token_file is not None:
        where = f"token credential {token_file} (realtime.token_auth_file)"
        secret = _read_key_file(token_file, where, _check_token)
        if secret is None:
            raise CredentialError(f"{where} does not exist; write the device's token into it")
        return ApiKey(secret, where), []
    warnings: list[str] = []
    looked: list[str] = []
    credentials_dir = env.get(CREDENTIALS_ENV, "")
    if credentials_dir:
        path = Path(credentials_dir) / CREDENTIAL_NAME
        where = f"systemd credential {path}"
        secret = _read_key_file(path, where)
        if secret is not None:
            return ApiKey(secret, where), warnings + _shape_warnings(secret)
        looked.append(f"systemd credential {path} (does not exist)")
    else:
        looked.append(f"systemd credential {CREDENTIAL_NAME} (${CREDENTIALS_ENV} is not set)")

    key_file = config.realtime.api_key_file
    if key_file is not None:
        where = f"key file {key_file} (realtime.api_key_file)"
        secret = _read_key_file(key_file, where)
        if secret is None:
            raise CredentialError(f"{where} does not exist; create it or {_INSTALL_HINT}")
        return ApiKey(secret, where), warnings + _shape_warnings(secret)
    looked.append("realtime.api_key_file (not set)")

    from_env = env.get(API_KEY_ENV, "").strip()
    if from_env:
        where = f"environment variable {API_KEY_ENV}"
        secret = _check_shape(from_env, f"${API_KEY_ENV}")
        warnings.append(
            f"the API key comes from ${API_KEY_ENV}, which is for development only "
            "(the environment leaks into child processes and over D-Bus); on a device, "
            + _INSTALL_HINT
        )
        return ApiKey(secret, where), warnings + _shape_warnings(secret)
    looked.append(f"${API_KEY_ENV} (not set)")

    raise CredentialError(
        f"no OpenAI API key found; looked in: {'; '.join(looked)}. To fix it, {_INSTALL_HINT}; "
        f"or set realtime.api_key_file to a file holding the key; or, for development only, "
        f"export {API_KEY_ENV}"
    )
