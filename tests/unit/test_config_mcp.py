"""[mcp]: remote MCP servers as [[mcp.servers]] tables, each problem named by its path."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from device.config import config_from_dict, config_warnings, describe, load_config, with_overrides
from device.config_mcp import MAX_SERVERS, McpServer
from device.errors import ConfigError

SOURCE = "/etc/edgevoice/edgevoice.toml"
HOME = {"label": "home", "url": "https://mcp.example.com/mcp"}


def servers(*tables: dict[str, Any]) -> tuple[McpServer, ...]:
    return config_from_dict({"mcp": {"servers": list(tables)}}, SOURCE).mcp.servers


def problem(*tables: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"mcp": {"servers": list(tables)}}, SOURCE)
    return str(caught.value)


def test_no_servers_by_default() -> None:
    assert load_config(None).mcp.servers == ()


def test_a_full_server_table_gives_a_typed_record(tmp_path: Path) -> None:
    path = tmp_path / "edgevoice.toml"
    path.write_text(
        """
        [[mcp.servers]]
        label = "home"
        url = "https://mcp.example.com/mcp"
        allowed_tools = ["lights_on", "lights_off", "list_rooms"]
        require_approval = "always"
        approve_tools = ["lights_on", "list_rooms"]
        deny_tools = ["lights_off"]
        description = "The lights of this house."
        authorization_file = "/etc/edgevoice/mcp-home.token"

        [[mcp.servers]]
        label = "docs_2"
        url = "http://127.0.0.1:8808/mcp"
        require_approval = "never"
        authorization_file = "$CREDENTIALS_DIRECTORY/mcp-docs"
        """,
        encoding="utf-8",
    )
    home, docs = load_config(path).mcp.servers
    assert home == McpServer(
        label="home",
        url="https://mcp.example.com/mcp",
        allowed_tools=("lights_on", "lights_off", "list_rooms"),
        require_approval="always",
        approve_tools=("lights_on", "list_rooms"),
        deny_tools=("lights_off",),
        description="The lights of this house.",
        authorization_file="/etc/edgevoice/mcp-home.token",
    )
    assert docs == McpServer("docs_2", "http://127.0.0.1:8808/mcp", require_approval="never",
                             authorization_file="$CREDENTIALS_DIRECTORY/mcp-docs")  # fmt: skip


def test_a_server_takes_defaults_for_what_it_does_not_say() -> None:
    (server,) = servers(HOME)
    assert server.allowed_tools == server.approve_tools == server.deny_tools == ()
    assert server.require_approval == "always"  # as the service's own default
    assert server.description == server.authorization_file == ""


def test_the_braced_credentials_form_is_read_as_the_plain_one() -> None:
    (server,) = servers({**HOME, "authorization_file": "${CREDENTIALS_DIRECTORY}/mcp-home"})
    assert server.authorization_file == "$CREDENTIALS_DIRECTORY/mcp-home"


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ([{"url": HOME["url"]}], "mcp.servers[0].label: is missing; every server needs its label"),
        ([{"label": "home"}], "mcp.servers[0].url: is missing; every server needs its https://"),
        (
            [HOME, {**HOME, "url": "https://b.example.com"}],
            'mcp.servers[1].label: "home" is also the label of mcp.servers[0]; each server needs',
        ),
        ([{**HOME, "label": "my home"}], 'mcp.servers[0].label: "my home" is not a server label'),
        ([{**HOME, "label": ""}], 'mcp.servers[0].label: "" is not a server label'),
        (
            [HOME, {**HOME, "label": "b", "url": "http://mcp.example.com/mcp"}],
            'mcp.servers[1].url: "http://mcp.example.com/mcp" uses http:// to another machine',
        ),
        ([{**HOME, "url": "ftp://mcp.example.com"}], 'mcp.servers[0].url: "ftp://mcp.example'),
        (
            [{**HOME, "url": "https://user:pw@mcp.example.com"}],
            "mcp.servers[0].url: must not hold a user name or password; put the server's token in",
        ),
        ([{**HOME, "url": "https://mcp.example.com/#x"}], "must not have a fragment"),
        ([{**HOME, "url": "https://mcp.example.com:99999/"}], "mcp.servers[0].url: is not a valid"),
        ([{**HOME, "url": 7}], "mcp.servers[0].url: expected a string, got an integer"),
        (
            [{**HOME, "allowed_tools": "search"}],
            "mcp.servers[0].allowed_tools: expected an array of tool names, got a string",
        ),
        (
            [{**HOME, "allowed_tools": ["search", "search"]}],
            'mcp.servers[0].allowed_tools[1]: "search" is listed twice',
        ),
        (
            [{**HOME, "allowed_tools": ["a b"]}],
            'mcp.servers[0].allowed_tools[0]: "a b" is not a tool name',
        ),
        (
            [{**HOME, "require_approval": "sometimes"}],
            'mcp.servers[0].require_approval: "sometimes" is not an approval policy; allowed:',
        ),
        (
            [{**HOME, "require_approval": "never", "deny_tools": ["fetch"]}],
            'mcp.servers[0].deny_tools: only means something with require_approval = "always"',
        ),
        (
            [{**HOME, "approve_tools": ["fetch"], "deny_tools": ["search", "fetch"]}],
            'mcp.servers[0].deny_tools[1]: "fetch" is also in approve_tools',
        ),
        (
            [{**HOME, "allowed_tools": ["search"], "approve_tools": ["fetch"]}],
            'mcp.servers[0].approve_tools[0]: "fetch" is not in allowed_tools, so the model',
        ),
        ([{**HOME, "description": "x" * 1001}], "mcp.servers[0].description: has 1001 characters"),
        (
            [{**HOME, "authorization_file": "mcp-home.token"}],
            'mcp.servers[0].authorization_file: "mcp-home.token" is neither an absolute path nor',
        ),
        (
            [{**HOME, "authorization_file": "$CREDENTIALS_DIRECTORY/../etc/shadow"}],
            'mcp.servers[0].authorization_file: "../etc/shadow" is not a credential name',
        ),
        ([{**HOME, "lable": "x"}], "mcp.servers[0].lable: unknown key; did you mean label?"),
        ([{**HOME, "zzz": 1}], "mcp.servers[0].zzz: unknown key; known keys: label, url,"),
        (["home"], "mcp.servers[0]: expected a table [[mcp.servers]], got a string"),
    ],
)
def test_bad_servers_are_named_by_their_path(tables: list[Any], message: str) -> None:
    text = problem(*tables)
    assert text.startswith(f"{SOURCE}: "), text
    assert message in text


def test_servers_must_be_tables() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"mcp": {"servers": {"label": "home"}}}, SOURCE)
    assert str(caught.value) == (
        f"{SOURCE}: mcp.servers: expected [[mcp.servers]] tables, got a table"
    )


def test_too_many_servers_are_refused() -> None:
    tables = [{**HOME, "label": f"s{i}"} for i in range(MAX_SERVERS + 1)]
    assert f"lists {MAX_SERVERS + 1} servers; allowed: at most {MAX_SERVERS}" in problem(*tables)


@pytest.mark.parametrize(
    "key", ["token", "authorization", "bearer_token", "Authorization", "headers", "api_key"]
)
def test_a_token_in_the_config_file_is_refused_and_never_echoed(key: str) -> None:
    secret = "tok_" + "Z" * 40
    text = problem({**HOME, key: secret})
    assert text.startswith(f"{SOURCE}: mcp.servers[0].{key}: a token never goes in the config")
    assert "name that with authorization_file" in text
    assert secret not in text


def test_a_key_shaped_name_or_path_is_not_echoed() -> None:
    key = "sk-proj-" + "Q" * 40
    assert key not in problem({**HOME, key: 1})
    assert key not in problem({**HOME, "authorization_file": key})
    assert key not in problem({**HOME, "url": f"https://{key}@mcp.example.com"})


def test_overrides_keep_checked_servers() -> None:
    config = with_overrides(load_config(None), mcp={"servers": [HOME]})
    again = with_overrides(config, device={"hardware": "fake"})
    assert again.mcp == config.mcp
    assert again.mcp.servers[0].label == "home"


def test_warnings_point_at_loopback_urls_and_servers_that_approve_nothing() -> None:
    config = with_overrides(
        load_config(None),
        mcp={"servers": [{"label": "local", "url": "http://localhost:9/mcp"},
                         {**HOME, "label": "ok", "approve_tools": ["search"]},
                         {**HOME, "label": "free", "require_approval": "never"}]},
    )  # fmt: skip
    warnings = [w for w in config_warnings(config) if "mcp." in w]
    assert warnings == [
        "mcp.servers[0].url points at this machine: the service cannot reach it there "
        "(only the local simulator can)",
        'mcp.servers[0] ("local") requires approval but approves no tool, so every call is '
        "refused; list the tools the speaker may run in approve_tools, or set "
        'require_approval = "never"',
    ]


def test_config_check_names_the_servers() -> None:
    assert "mcp:      none" in describe(load_config(None))
    config = with_overrides(load_config(None), mcp={"servers": [HOME]})
    assert "mcp:      home (https://mcp.example.com/mcp, approval always)" in describe(config)


def test_the_sample_shows_an_example_that_loads_as_written(tmp_path: Path) -> None:
    """The commented [[mcp.servers]] example of the sample, uncommented, is a valid server."""
    sample = Path(str(resources.files("device") / "data" / "edgevoice.sample.toml"))
    text = sample.read_text(encoding="utf-8").split("\n[mcp]\n", 1)[1]
    example = "\n".join(
        match.group(1) for line in text.splitlines() if (match := re.match(r"#   (.*)", line))
    )
    data = tomllib.loads(example)
    (server,) = config_from_dict(data, str(sample)).mcp.servers
    assert server.label == "home" and server.url.startswith("https://")
    assert server.approve_tools and server.authorization_file.startswith("$CREDENTIALS_DIRECTORY/")
