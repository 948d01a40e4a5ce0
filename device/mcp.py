"""Remote MCP servers: what the session offers the model, and the speaker's answers.

The service, not the speaker, connects to MCP servers and calls their tools. The
speaker's part is small but has to be right:

* ``load_mcp`` reads each server's token once at start (a file, or a systemd
  credential), failing with a message that names the config key and the file.
* ``McpServers.tools()`` gives the GA ``{type: "mcp", ...}`` tool definitions for
  ``session.tools``. A token stays a ``Secret`` inside them: ``repr``, logs, the
  trace and errors show ``***``; only the WebSocket's JSON encoder reveals it
  (``device.realtime.client.encode``).
* ``McpMonitor`` watches one session: it answers each ``mcp_approval_request`` by
  the configured policy (nobody stands by a speaker to click "allow"), logs the
  decision, and asks for the response that reads the answer, since the service
  does not start one by itself; it logs tool listings and calls on the way.
"""

from __future__ import annotations

import logging
import secrets
import stat
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from device.config import Config
from device.config_mcp import CREDENTIALS_PREFIXES, McpServer
from device.credentials import CREDENTIALS_ENV, Secret
from device.errors import CredentialError
from device.realtime import events as ev
from device.realtime.session import MAX_ID_CHARS, RealtimeSession

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 16 * 1024  # an OAuth token or JWT is a few kB; the bound keeps a wrong file out
APPROVAL_ID_PREFIX = "mcpok_"
_MAX_REMEMBERED_ITEMS = 64
_BUSY = "conversation_already_has_active_response"


# -- tokens ------------------------------------------------------------------------------


def _token_path(server: McpServer, env: Mapping[str, str]) -> tuple[Path, bool]:
    """The file holding the token, and whether it is a systemd credential."""
    name = server.authorization_file.removeprefix(CREDENTIALS_PREFIXES[0])
    if name == server.authorization_file:
        return Path(name), False
    directory = env.get(CREDENTIALS_ENV, "")
    if not directory:
        raise CredentialError(
            f"${CREDENTIALS_ENV} is not set, so the systemd credential {name} cannot be read; "
            f"load it in the unit with LoadCredential={name}:/etc/edgevoice/{name} (or "
            "LoadCredentialEncrypted=), or name a token file instead"
        )
    return Path(directory) / name, True


def _read_token(path: Path, credential: bool) -> Secret:
    """The token in ``path``; every complaint describes the file, never its content."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_TOKEN_BYTES + 1)
    except FileNotFoundError:
        if credential:
            raise CredentialError(
                f"the unit loads no credential {path.name} (LoadCredential={path.name}:...)"
            ) from None
        raise CredentialError(f"{path} does not exist; write the server's token into it "
                              "(chmod 600), or fix the path") from None  # fmt: skip
    except IsADirectoryError:
        raise CredentialError(f"{path} is a directory, not a file holding a token") from None
    except PermissionError:
        raise CredentialError(f"{path} cannot be read (permission denied); the service user "
                              "needs read access") from None  # fmt: skip
    except OSError as exc:
        raise CredentialError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_TOKEN_BYTES:
        raise CredentialError(f"{path} is larger than {MAX_TOKEN_BYTES} bytes; not a token")
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise CredentialError(f"{path} is not UTF-8 text, so it does not hold a token") from None
    if not text:
        raise CredentialError(f"{path} is empty; write the server's token into it")
    if text.lower().startswith("bearer "):
        raise CredentialError(f'{path} holds "Bearer <token>"; write the token alone')
    if any(char.isspace() for char in text):
        raise CredentialError(f"{path} holds more than one word or line; write the token alone")
    if not text.isascii() or not text.isprintable():
        raise CredentialError(f"{path} holds characters a token cannot have")
    return Secret(text)


def _world_readable(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False


# -- the servers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The speaker's answer to one approval request, and why."""

    approve: bool
    why: str


@dataclass(frozen=True)
class McpServers:
    """The configured servers with their tokens (by label), read once at start."""

    servers: tuple[McpServer, ...] = ()
    tokens: Mapping[str, Secret] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()

    def tools(self) -> tuple[Mapping[str, Any], ...]:
        """The GA MCP tool definitions for ``session.tools``, one per server."""
        return tuple(self._definition(server) for server in self.servers)

    def _definition(self, server: McpServer) -> Mapping[str, Any]:
        tool: dict[str, Any] = {
            "type": "mcp",
            "server_label": server.label,
            "server_url": server.url,
            "require_approval": server.require_approval,
        }
        if server.allowed_tools:
            tool["allowed_tools"] = list(server.allowed_tools)
        if server.description:
            tool["server_description"] = server.description
        token = self.tokens.get(server.label)
        if token is not None:
            tool["authorization"] = token  # revealed by the socket's encoder, nowhere else
        return MappingProxyType(tool)

    def decide(self, label: str, tool: str) -> Decision:
        """Approve or refuse one call the service asks about, by the server's lists."""
        server = next((s for s in self.servers if s.label == label), None)
        if server is None:
            return Decision(False, "no such server is configured on this speaker")
        if tool in server.deny_tools:
            return Decision(False, "listed in deny_tools")
        if tool in server.approve_tools:
            return Decision(True, "listed in approve_tools")
        if server.require_approval == "never":
            return Decision(True, 'require_approval is "never"')
        return Decision(False, "not in approve_tools, and nobody is at hand to approve it")


def load_mcp(config: Config, env: Mapping[str, str]) -> McpServers:
    """The servers of [mcp] with their tokens read; warnings to log are kept with them.

    Called at start and on reload, on the main thread; reads one small file per
    server that has ``authorization_file``.

    Raises:
        CredentialError: a token file or credential that is missing, unreadable,
            empty or not a token; the message names the config file and key.
    """
    tokens: dict[str, Secret] = {}
    warnings: list[str] = []
    source = f"{config.source}: " if config.source is not None else ""
    for index, server in enumerate(config.mcp.servers):
        if not server.authorization_file:
            continue
        key = f"mcp.servers[{index}].authorization_file"
        try:
            path, credential = _token_path(server, env)
            tokens[server.label] = _read_token(path, credential)
        except CredentialError as exc:
            raise CredentialError(f"{source}{key}: {exc}") from None
        if not credential and _world_readable(path):
            warnings.append(f"{key}: {path} is readable by every user; chmod 600 it, or "
                            "install the token as a systemd credential")  # fmt: skip
    return McpServers(config.mcp.servers, MappingProxyType(tokens), tuple(warnings))


# -- one session's MCP traffic -----------------------------------------------------------


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return value if isinstance(value, str) else ""


class McpMonitor:
    """Answers approval requests and logs MCP listings and calls for one session.

    ``handle`` sees every server event before the conversation does and returns
    True for those that concern MCP alone (the conversation then ignores them).
    """

    def __init__(self, session: RealtimeSession, servers: McpServers | None = None) -> None:
        self._session = session
        self._servers = servers if servers is not None else McpServers()
        self._items: OrderedDict[str, Mapping[str, Any]] = OrderedDict()  # MCP items by id
        self._finished: set[str] = set()  # ids of items seen complete
        self._listings: dict[str, bool] = {}  # mcp_list_tools item id -> failed
        self._logged: set[str] = set()  # listings and calls already in the journal
        self._answered: set[str] = set()  # approval request ids
        self._asked_in: set[str] = set()  # response ids that carried an answered request
        self._owed = False  # an answer was sent; a response must read it
        self._follow_up: str | None = None  # that response.create, until a response starts
        self._follow_up_ids: set[str] = set()
        self.approvals: list[tuple[str, str, Decision]] = []  # (server, tool, decision)

    @property
    def answer_owed(self) -> bool:
        """True while an approval answer waits for the response that reads it."""
        return self._owed or self._follow_up is not None

    def handle(self, event: ev.ServerEvent) -> bool:
        """Act on one server event; True when it concerns MCP alone."""
        if isinstance(event, ev.ItemAdded | ev.ItemDone):
            self._saw(event.item, None, done=isinstance(event, ev.ItemDone))
        elif isinstance(event, ev.OutputItemAdded | ev.OutputItemDone):
            self._saw(event.item, event.response_id, done=isinstance(event, ev.OutputItemDone))
        elif isinstance(event, ev.ResponseCreated):
            # Whichever response starts now reads the answers sent so far.
            self._owed, self._follow_up = False, None
        elif isinstance(event, ev.ResponseDone):
            for item in event.output:
                self._saw(item, event.response_id, done=True)
            if event.response_id in self._asked_in and event.status != "completed":
                self._owed = False  # the user cut it short and has moved on
            self._ask_for_response()
        elif isinstance(event, ev.McpListToolsDone):
            self._listings[event.item_id] = event.failed
            self._log_listing(event.item_id)
            return True
        elif isinstance(event, ev.McpCallDone):
            log.debug("MCP call %s %s", event.item_id, "failed" if event.failed else "completed")
            return True
        elif isinstance(event, ev.ServerError):
            return self._on_error(event)
        return False

    def _saw(self, item: Mapping[str, Any], response_id: str | None, *, done: bool) -> None:
        kind, item_id = item.get("type"), item.get("id")
        if not isinstance(kind, str) or not kind.startswith("mcp_") or not isinstance(item_id, str):
            return
        self._items[item_id] = item
        self._items.move_to_end(item_id)
        while len(self._items) > _MAX_REMEMBERED_ITEMS:
            self._items.popitem(last=False)
        if done:
            self._finished.add(item_id)
        if kind == "mcp_approval_request" and done:  # answered once complete, as advised
            self._answer(item_id, item, response_id)
        elif kind == "mcp_list_tools":
            self._log_listing(item_id)
        elif kind == "mcp_call" and done:
            self._log_call(item_id, item)

    # -- approvals ---------------------------------------------------------------------

    def _answer(self, request_id: str, item: Mapping[str, Any], response_id: str | None) -> None:
        if request_id in self._answered:
            return
        self._answered.add(request_id)
        label, tool = _text(item, "server_label"), _text(item, "name")
        decision = self._servers.decide(label, tool)
        self.approvals.append((label, tool, decision))
        answer: dict[str, Any] = {
            "type": "mcp_approval_response",
            "id": f"{APPROVAL_ID_PREFIX}{secrets.token_hex(8)}"[:MAX_ID_CHARS],
            "approval_request_id": request_id,
            "approve": decision.approve,
        }
        if decision.approve:
            log.info('MCP server "%s": approved a call of %s (%s)', label, tool, decision.why)
        else:
            answer["reason"] = f"The owner of this speaker does not allow {tool} ({decision.why})."
            level = logging.WARNING if decision.why.startswith("not in") else logging.INFO
            log.log(level, 'MCP server "%s": refused a call of %s (%s)', label, tool, decision.why)
        self._session.create_item(answer, previous_item_id=request_id)
        self._owed = True
        asked_in = response_id or self._session.active_response_id  # item events carry none
        if asked_in is not None:
            self._asked_in.add(asked_in)
        self._ask_for_response()

    def _ask_for_response(self) -> None:
        """One response.create once no response runs: the service does not answer an
        approval by itself, and refuses a new response while one runs."""
        if self._owed and self._follow_up is None and self._session.active_response_id is None:
            self._owed = False
            self._follow_up = self._session.create_response()
            self._follow_up_ids.add(self._follow_up)

    def _on_error(self, event: ev.ServerError) -> bool:
        if event.code == _BUSY and event.client_event_id in self._follow_up_ids:
            # A response started meanwhile (the user spoke): it reads the answer.
            self._follow_up = None
            log.debug("the approval is read by the response already running")
            return True
        return False

    # -- the journal -------------------------------------------------------------------

    def _log_listing(self, item_id: str) -> None:
        failed = self._listings.get(item_id)
        item = self._items.get(item_id, {})
        label = _text(item, "server_label") or f"(item {item_id})"
        if failed is None or item_id in self._logged:
            return
        if failed:
            self._logged.add(item_id)
            log.warning(
                'MCP server "%s": the service could not list its tools (unreachable, or it '
                "refused the token); they cannot be used in this session",
                label,
            )
        elif item_id in self._finished:
            self._logged.add(item_id)
            tools = item.get("tools")
            names = [_text(t, "name") for t in tools] if isinstance(tools, list) else []
            log.info('MCP server "%s" offers %d tools: %s', label, len(names),
                     ", ".join(names) or "none")  # fmt: skip

    def _log_call(self, item_id: str, item: Mapping[str, Any]) -> None:
        if item_id in self._logged:
            return
        self._logged.add(item_id)
        label, tool = _text(item, "server_label"), _text(item, "name")
        error = item.get("error")
        if isinstance(error, Mapping):
            kind, message = _text(error, "type"), _text(error, "message")
            log.warning('MCP server "%s": the call of %s failed (%s: %s)', label, tool, kind,
                        message)  # fmt: skip
        else:
            output = _text(item, "output")
            log.info('MCP server "%s": the call of %s returned %d characters', label, tool,
                     len(output))  # fmt: skip
