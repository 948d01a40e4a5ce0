"""[mcp]: remote MCP servers whose tools the model may use, through the service.

Declared here rather than in ``device.config`` to keep that module small; [mcp] is
one section of ``Config`` like the others. It holds one key, ``servers``, written
as ``[[mcp.servers]]`` tables; the rule below turns them into frozen ``McpServer``
records and names every problem by its path (``mcp.servers[1].url``).

The service, not the speaker, talks to these servers: the speaker only tells the
service where they are, which of their tools the model may see, and answers the
service's approval requests by the policy written here (``device.mcp``).

A server's token never goes in this file, which is readable by more than the
service and ends up in backups: ``authorization_file`` names a file holding it,
or a systemd credential as ``$CREDENTIALS_DIRECTORY/<name>``. A key that looks
like it holds a token is refused with a message saying so.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from device.config_rules import (
    _LOOKS_LIKE_KEY,
    _Invalid,
    _key,
    _secret_url,
    _show,
    _string,
    _type_name,
    is_loopback,
)

MAX_SERVERS = 16
MAX_LABEL_CHARS = 64
MAX_TOOLS = 128
MAX_DESCRIPTION_CHARS = 1000
APPROVALS = ("always", "never")
CREDENTIALS_PREFIXES = ("$CREDENTIALS_DIRECTORY/", "${CREDENTIALS_DIRECTORY}/")

_LABEL = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_LABEL_CHARS}}}")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
# Key names that say "a secret is written here"; authorization_file is the one way.
_SECRET_WORDS = ("token", "authorization", "bearer", "secret", "password", "api_key", "header")


@dataclass(frozen=True, slots=True)
class McpServer:
    """One ``[[mcp.servers]]`` table, checked."""

    label: str
    """The service's ``server_label``: names the server to the model and in the journal."""
    url: str
    allowed_tools: tuple[str, ...] = ()
    """The tools the model is offered; () offers every tool the server lists."""
    require_approval: str = "always"
    """"always": the service asks the speaker before every call; "never": it does not."""
    approve_tools: tuple[str, ...] = ()
    """Asked about these, the speaker approves the call."""
    deny_tools: tuple[str, ...] = ()
    """Asked about these (or any tool not in approve_tools), the speaker refuses."""
    description: str = ""
    """Tells the model what the server is for (``server_description``)."""
    authorization_file: str = ""
    """Where the server's token is read at start: "" (none), an absolute path, or
    ``$CREDENTIALS_DIRECTORY/<name>`` for a systemd credential."""


def _url(value: Any) -> str:
    """https://, or http:// to this machine (a local test server only)."""
    return _secret_url(
        _string(value),
        allowed="https://host/path (http:// only to 127.0.0.1 or localhost)",
        secret_from="put the server's token in a file and name it with authorization_file",
        crossing="the token and the tool calls",
    )


def _label(value: Any) -> str:
    text = _string(value)
    if not _LABEL.fullmatch(text):
        raise _Invalid(f"{_show(text)} is not a server label; allowed: 1..{MAX_LABEL_CHARS} "
                       "letters, digits, _ and -")  # fmt: skip
    return text


def _tool_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise _Invalid(f"expected an array of tool names, got {_type_name(value)}")
    if len(value) > MAX_TOOLS:
        raise _Invalid(f"lists {len(value)} tools; allowed: at most {MAX_TOOLS}")
    names: list[str] = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            shown = _show(name) if isinstance(name, str) else _type_name(name)
            raise _Invalid(f"{shown} is not a tool name; allowed: 1..128 letters, digits, "
                           "_ . and -", f"[{index}]")  # fmt: skip
        if name in names:
            raise _Invalid(f"{_show(name)} is listed twice", f"[{index}]")
        names.append(name)
    return tuple(names)


def _approval(value: Any) -> str:
    text = _string(value)
    if text not in APPROVALS:
        raise _Invalid(f"{_show(text)} is not an approval policy; allowed: always (the "
                       "service asks the speaker before each call, which answers by "
                       "approve_tools and deny_tools) or never")  # fmt: skip
    return text


def _description(value: Any) -> str:
    text = _string(value)
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise _Invalid(f"has {len(text)} characters; allowed: at most {MAX_DESCRIPTION_CHARS}")
    return text


def _token_file(value: Any) -> str:
    """An empty string, an absolute path, or ``$CREDENTIALS_DIRECTORY/<name>``."""
    text = _string(value)
    if _LOOKS_LIKE_KEY.search(text):
        raise _Invalid("holds what looks like a key; put the token in a file, name the file")
    for prefix in CREDENTIALS_PREFIXES:
        if text.startswith(prefix):
            name = text.removeprefix(prefix)
            if not _CREDENTIAL_NAME.fullmatch(name) or name in (".", ".."):
                raise _Invalid(f"{_show(name)} is not a credential name; allowed: letters, "
                               "digits, _ . and - (as in LoadCredential=NAME:...)")  # fmt: skip
            return f"{CREDENTIALS_PREFIXES[0]}{name}"
    if text and ("\0" in text or not text.startswith("/")):
        raise _Invalid(f"{_show(text)} is neither an absolute path nor "
                       "$CREDENTIALS_DIRECTORY/<name>; allowed: \"\" for none, "
                       "/path/to/token or $CREDENTIALS_DIRECTORY/<credential>")  # fmt: skip
    return text


_FIELD_RULES: dict[str, Any] = {
    "label": _label,
    "url": _url,
    "allowed_tools": _tool_names,
    "require_approval": _approval,
    "approve_tools": _tool_names,
    "deny_tools": _tool_names,
    "description": _description,
    "authorization_file": _token_file,
}
_REQUIRED = ("label", "url")


def _unknown(key: str) -> str:
    if key != "authorization_file" and any(word in key.lower() for word in _SECRET_WORDS):
        return ("a token never goes in the config file (it is readable by more than the "
                "service and ends up in backups); write it into a file only the service can "
                "read, or a systemd credential, and name that with authorization_file")  # fmt: skip
    close = difflib.get_close_matches(key, list(_FIELD_RULES), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(_FIELD_RULES)}"
    return f"unknown key; {hint}"


def _policy_problem(server: McpServer) -> tuple[str, str] | None:
    """(key, reason) for approval lists that cannot mean what they say, or None."""
    if server.require_approval == "never":
        for key in ("approve_tools", "deny_tools"):
            if getattr(server, key):
                return key, ('only means something with require_approval = "always": with '
                             '"never" the service calls every tool without asking; to keep a '
                             "tool from being used, list the others in allowed_tools")  # fmt: skip
    for index, name in enumerate(server.deny_tools):
        if name in server.approve_tools:
            return f"deny_tools[{index}]", (f"{_show(name)} is also in approve_tools; a tool "
                                            "is approved or refused, not both")  # fmt: skip
    for key in ("approve_tools", "deny_tools"):
        for index, name in enumerate(getattr(server, key)):
            if server.allowed_tools and name not in server.allowed_tools:
                return f"{key}[{index}]", (f"{_show(name)} is not in allowed_tools, so the "
                                           "model is never offered it")  # fmt: skip
    return None


def _server(table: Any) -> McpServer:
    if isinstance(table, McpServer):  # from with_overrides: checked already
        return table
    if not isinstance(table, Mapping):
        raise _Invalid(f"expected a table [[mcp.servers]], got {_type_name(table)}")
    values: dict[str, Any] = {}
    for raw_key, raw_value in table.items():
        key = str(raw_key)
        if key not in _FIELD_RULES:
            shown = "(a name that looks like a key)" if _LOOKS_LIKE_KEY.search(key) else key
            raise _Invalid(_unknown(key), f".{shown}")
        try:
            values[key] = _FIELD_RULES[key](raw_value)
        except _Invalid as problem:
            raise _Invalid(str(problem), f".{key}{problem.where}") from None
    for key in _REQUIRED:
        if key not in values:
            what = "its label (letters, digits, _ and -)" if key == "label" else "its https:// URL"
            raise _Invalid(f"is missing; every server needs {what}", f".{key}")
    server = McpServer(**values)
    if (found := _policy_problem(server)) is not None:
        raise _Invalid(found[1], f".{found[0]}")
    return server


def mcp_servers(value: Any) -> tuple[McpServer, ...]:
    """The ``servers`` key: an array of tables, each a server with its own label."""
    if not isinstance(value, list | tuple):
        raise _Invalid(f"expected [[mcp.servers]] tables, got {_type_name(value)}")
    if len(value) > MAX_SERVERS:
        raise _Invalid(f"lists {len(value)} servers; allowed: at most {MAX_SERVERS}")
    servers: list[McpServer] = []
    for index, table in enumerate(value):
        try:
            server = _server(table)
        except _Invalid as problem:
            raise _Invalid(str(problem), f"[{index}]{problem.where}") from None
        for other, earlier in enumerate(servers):
            if earlier.label == server.label:
                raise _Invalid(f"{_show(server.label)} is also the label of mcp.servers[{other}]; "
                               "each server needs its own", f"[{index}].label")  # fmt: skip
        servers.append(server)
    return tuple(servers)


@dataclass(frozen=True, slots=True)
class McpConfig:
    """[mcp]: remote MCP servers the model may use through the service."""

    servers: tuple[McpServer, ...] = _key((), mcp_servers)
    """Written as [[mcp.servers]] tables; () uses none."""


def mcp_warnings(mcp: McpConfig) -> list[str]:
    """What ``edgevoice config check`` should point out about the servers."""
    warnings: list[str] = []
    for index, server in enumerate(mcp.servers):
        host = urlsplit(server.url).hostname or ""
        if is_loopback(host):
            warnings.append(f"mcp.servers[{index}].url points at this machine: the service "
                            "cannot reach it there (only the local simulator can)")  # fmt: skip
        if server.require_approval == "always" and not server.approve_tools:
            warnings.append(
                f'mcp.servers[{index}] ("{server.label}") requires approval but approves no '
                "tool, so every call is refused; list the tools the speaker may run in "
                'approve_tools, or set require_approval = "never"'
            )
    return warnings


def describe_mcp(mcp: McpConfig) -> str:
    """One line for ``edgevoice config check``."""
    if not mcp.servers:
        return "none"
    return ", ".join(f"{s.label} ({s.url}, approval {s.require_approval})" for s in mcp.servers)
