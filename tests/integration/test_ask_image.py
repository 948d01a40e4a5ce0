"""``edgevoice ask-image``: a picture and a question go to the simulator as one user message,
the answer comes back as text on standard output; bad pictures, missing keys and
unreachable or refusing services are clear errors with their own exit codes."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest

from device.cli import main
from device.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_USAGE
from device.realtime.sim_faults import parse_fault
from device.realtime.simulator import RealtimeSimulator, SimulatorOptions
from tests.contract.oracle import client_problems, server_problems
from tests.integration.test_cli import clean_env
from tests.pictures import encode, gradient

SAFETY_TIMEOUT_S = 60.0  # bounds a hung test; nothing is asserted about time
KEY = "sk-test-ask-image"


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "shelf.png"
    path.write_bytes(encode(gradient(1600, 1200), "PNG"))
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "edgevoice.toml"
    path.write_text("[camera]\nmax_bytes = 150000\n")
    return path


def ask_on_simulator(
    argv: list[str], options: SimulatorOptions | None = None
) -> tuple[int, str, str, RealtimeSimulator]:
    """Run ``edgevoice ask-image ARGV --url <simulator>`` as a process of its own."""

    async def body() -> tuple[int, str, str, RealtimeSimulator]:
        async with RealtimeSimulator(options or SimulatorOptions()) as sim:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "device", "ask-image", *argv, "--url", sim.url,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=clean_env(OPENAI_API_KEY=KEY),
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), SAFETY_TIMEOUT_S)
            assert process.returncode is not None
            return process.returncode, out.decode(), err.decode(), sim

    code, out, err, sim = asyncio.run(body())
    assert [p for e in sim.sent for p in server_problems(e)] == []
    assert [p for e in sim.received for p in client_problems(e)] == []
    assert "Traceback" not in err
    assert KEY not in out + err
    return code, out, err, sim


def test_the_answer_is_printed_and_the_picture_sent_shrunk(picture: Path, config: Path) -> None:
    argv = [str(picture), "--question", "What is on the shelf?", "--config", str(config)]
    code, out, err, sim = ask_on_simulator(argv)
    assert code == 0, err
    assert out == "I see a 1024 by 768 image. You asked: What is on the shelf?\n"
    assert "picture: 1024x768 JPEG" in err and "from 1600x1200 PNG" in err
    assert "765 image" in err  # image tokens from response.done usage
    assert "turn cost" in err
    kinds = [e["type"] for e in sim.received]
    assert kinds == ["session.update", "conversation.item.create", "response.create"]
    assert sim.received[0]["session"]["output_modalities"] == ["text"]
    [text, image] = sim.received[1]["item"]["content"]
    assert text == {"type": "input_text", "text": "What is on the shelf?"}
    assert image["type"] == "input_image" and image["detail"] == "auto"
    assert len(image["image_url"]) <= 150_000 * 4 // 3 + 100  # base64 of at most max_bytes


def test_a_key_the_service_refuses_is_a_credential_error(picture: Path, config: Path) -> None:
    options = SimulatorOptions(faults=(parse_fault("http:401"),))
    code, _, err, sim = ask_on_simulator([str(picture), "--config", str(config)], options)
    assert code == EXIT_CONFIG
    assert "HTTP 401" in err and "check the API key from environment variable" in err
    assert sim.received == []


def test_a_service_error_is_a_failure_saying_what_was_refused(picture: Path, config: Path) -> None:
    options = SimulatorOptions(faults=(parse_fault("error:server_error@response.created"),))
    code, out, err, _ = ask_on_simulator([str(picture), "--config", str(config)], options)
    assert code == EXIT_FAILURE
    assert out == ""
    assert "the service refused" in err and "server_error" in err


def in_process(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    for name in ("OPENAI_API_KEY", "CREDENTIALS_DIRECTORY", "EDGEVOICE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    code = main(["ask-image", *argv])
    return code, capsys.readouterr().err


def test_not_a_picture_is_a_usage_error_naming_the_file(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    notes = tmp_path / "notes.txt"
    notes.write_text("milk, eggs")
    code, err = in_process([str(notes), "--config", str(config)], capsys, monkeypatch)
    assert code == EXIT_USAGE
    assert f"{notes}: is not a picture" in err and "convert it to JPEG or PNG" in err
    code, err = in_process([str(tmp_path / "gone.jpg"), "--config", str(config)],
                           capsys, monkeypatch)  # fmt: skip
    assert code == EXIT_USAGE and "gone.jpg: does not exist" in err


def test_without_a_key_it_is_a_credential_error(
    picture: Path, config: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    code, err = in_process([str(picture), "--config", str(config)], capsys, monkeypatch)
    assert code == EXIT_CONFIG
    assert "no OpenAI API key found" in err and "OPENAI_API_KEY" in err


def test_an_unreachable_service_is_a_failure(
    picture: Path, config: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/v1/realtime"
    argv = [str(picture), "--config", str(config), "--url", url]
    for name in ("CREDENTIALS_DIRECTORY", "EDGEVOICE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert main(["ask-image", *argv]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert f"cannot reach {url}" in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--url", "http://example.com/v1/realtime", "--url: "), ("--question", " ", "empty")],
)
def test_bad_options_are_usage_errors(
    picture: Path, config: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, option: str, value: str, message: str,
) -> None:  # fmt: skip
    argv = [str(picture), "--config", str(config), option, value]
    code, err = in_process(argv, capsys, monkeypatch)
    assert code == EXIT_USAGE and message in err
