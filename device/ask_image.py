"""``edgevoice ask-image PATH``: ask the Realtime model about one picture and print its answer.

The picture is prepared exactly as the "look" tool prepares the camera's
(``[camera]`` sizes), sent with the question as one user message, and answered
as text in a session of its own: one connection, one question, one answer. The
answer goes to standard output; what was sent and what it cost go to standard
error, so the answer can be piped. ``--url`` points it at another endpoint,
such as the local simulator.

Exit codes: 0 answered; 1 the service could not be reached or gave no answer;
2 a bad picture or option; 78 no API key, or the service refused it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from device.config import Config, load_config, resolve_config_path, with_overrides
from device.cost import describe_turn, price_for, turn_cost
from device.credentials import load_api_key
from device.errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    RemoteProtocolError,
    ServiceError,
)
from device.realtime import events as ev
from device.realtime.client import Closed, RealtimeClient, realtime_url
from device.realtime.session import RealtimeSession, SessionSettings

if TYPE_CHECKING:
    from device.images import PreparedImage

DEFAULT_QUESTION = "What is in this picture? Answer in one or two sentences."
MIB = 1024 * 1024


class NoAnswer(Exception):
    """The service was reached but gave no answer; the message says why."""


@dataclass(frozen=True)
class Answer:
    text: str
    usage: ev.Usage | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the picture (JPEG, PNG, WebP, GIF, BMP or TIFF)")
    parser.add_argument(
        "--question", default=DEFAULT_QUESTION, help="what to ask about it (default: %(default)r)"
    )
    parser.add_argument("--config", type=Path, help="config file (default: as for run)")
    parser.add_argument(
        "--url",
        help="Realtime endpoint to use instead of realtime.url, "
        "e.g. ws://127.0.0.1:8765/v1/realtime for a local simulator",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="give up after this many seconds (default: %(default)s)",
    )


async def _send_all(session: RealtimeSession, client: RealtimeClient) -> None:
    for event in session.data_to_send():
        await client.send(event)


async def _next_events(session: RealtimeSession, client: RealtimeClient) -> list[ev.ServerEvent]:
    try:
        return session.receive(await client.recv())
    except Closed as exc:
        raise NoAnswer(f"the connection closed before the answer ({exc})") from None
    except RemoteProtocolError as exc:
        raise NoAnswer(f"the service sent something unreadable: {exc}") from None


def _refused(error: ev.ServerError, what: str) -> NoAnswer:
    param = f", {error.param}" if error.param else ""
    return NoAnswer(f"the service refused {what} ({error.code or error.error_type}{param}): "
                    f"{error.message}")  # fmt: skip


async def ask(config: Config, api_key: str, picture: PreparedImage, question: str) -> Answer:
    """One session: configure it for text, send the picture and question, read the answer.

    Raises NoAnswer, ServiceError (HTTP status), OSError or TimeoutError.
    """
    from device.images import image_message

    realtime = config.realtime
    settings = SessionSettings(voice=realtime.voice, instructions=realtime.instructions,
                               output_modalities=("text",), turn_detection=None)  # fmt: skip
    session = RealtimeSession(settings, id_prefix="ask")
    client = RealtimeClient(realtime_url(realtime.url, realtime.model), api_key,
                            max_message_bytes=realtime.max_message_mib * MIB,
                            open_timeout_s=realtime.connect_timeout_s)  # fmt: skip
    await client.connect()
    try:
        # The picture goes only into a session known to answer in text.
        update = session.configure()
        await _send_all(session, client)
        while not session.configured:
            for event in await _next_events(session, client):
                if isinstance(event, ev.ServerError) and event.client_event_id == update:
                    raise _refused(event, "the session configuration")
        sent = {
            session.create_item(image_message(picture, config.camera.detail, question)):
                "the picture",
            session.create_response(): "the request for an answer",
        }  # fmt: skip
        await _send_all(session, client)
        text: list[str] = []
        while True:
            for event in await _next_events(session, client):
                if isinstance(event, ev.ServerError):
                    raise _refused(event, sent.get(event.client_event_id or "", "the question"))
                if isinstance(event, ev.TextDelta | ev.TranscriptDelta):
                    text.append(event.delta)
                elif isinstance(event, ev.ResponseDone):
                    if event.status != "completed":
                        raise NoAnswer(f"the answer ended {event.status}: {event.status_details}")
                    return Answer("".join(text).strip(), event.usage)
    finally:
        await client.close()


def _usage_line(config: Config, answer: Answer) -> str:
    usage = answer.usage
    if usage is None:
        return "usage: not reported"
    tokens = (f"tokens: {usage.input_tokens} in ({usage.input_image_tokens} image, "
              f"{usage.input_text_tokens} text), {usage.output_tokens} out")  # fmt: skip
    prices = price_for(config.realtime.model, config.cost.prices)
    if prices is None:
        return tokens
    return f"{tokens}; {describe_turn(turn_cost(usage, prices), currency=config.cost.currency)}"


def run_ask_image(args: argparse.Namespace) -> int:
    """The ``ask-image`` command; ConfigError and CredentialError reach the caller (exit 78)."""
    from device.images import ImageError, prepare_file  # Pillow loads for this command only

    config = load_config(resolve_config_path(args.config, os.environ)[0])
    if args.url:
        try:
            config = with_overrides(config, realtime={"url": args.url})
        except ConfigError as exc:
            print(f"edgevoice ask-image: --url: {exc.reason}", file=sys.stderr)
            return EXIT_USAGE
    if not args.question.strip():
        print("edgevoice ask-image: --question is empty; ask something", file=sys.stderr)
        return EXIT_USAGE
    try:
        picture = prepare_file(args.path, config.camera.limits)
    except ImageError as exc:
        print(f"edgevoice ask-image: {exc}", file=sys.stderr)
        return EXIT_USAGE
    api_key, warnings = load_api_key(config, os.environ)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"picture: {picture.describe()}", file=sys.stderr)
    url = config.realtime.url
    try:
        answer = asyncio.run(
            asyncio.wait_for(
                ask(config, api_key.secret.reveal(), picture, args.question), args.timeout
            )
        )
    except ServiceError as exc:
        refused_key = exc.status in (401, 403)
        hint = f"; check the API key from {api_key.source}" if refused_key else ""
        print(f"edgevoice ask-image: {url}: {exc}{hint}", file=sys.stderr)
        return EXIT_CONFIG if refused_key else EXIT_FAILURE
    except NoAnswer as exc:
        print(f"edgevoice ask-image: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except TimeoutError:
        print(f"edgevoice ask-image: no answer from {url} in time (connecting may take "
              f"{config.realtime.connect_timeout_s:g} s, all of it {args.timeout:g} s)",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE
    except OSError as exc:
        print(f"edgevoice ask-image: cannot reach {url}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(answer.text)
    print(_usage_line(config, answer), file=sys.stderr)
    return EXIT_OK
