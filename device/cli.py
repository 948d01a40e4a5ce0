"""The ``edgevoice`` command line.

Exit codes: 0 ok, 1 failure (hardware, network), 2 usage or an unusable input file,
78 configuration or credential error (the unit does not restart on 78: a person must
fix it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from device.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError, CredentialError

if TYPE_CHECKING:
    from device.app import Daemon
    from device.config import Config
    from device.realtime.sim_faults import Fault
    from hw.factory import HardwareRequest

log = logging.getLogger("edgevoice")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgevoice",
        description="Smart-speaker daemon: a mic-array HAT talking to the OpenAI Realtime API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon on the configured hardware and the API")
    run.add_argument(
        "--config",
        type=Path,
        help="config file (default: $EDGEVOICE_CONFIG, "
        "else /etc/edgevoice/edgevoice.toml if present, else built-in defaults)",
    )

    from device.demo_listen import SCENARIOS

    demo = sub.add_parser("demo", help="the daemon on fake hardware against the local simulator")
    demo.add_argument(
        "--input",
        type=Path,
        help="spoken question, a 16-bit PCM WAV (default: the shipped question)",
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("out/demo/reply.wav"),
        help="WAV of everything the speaker played (default: %(default)s)",
    )
    demo.add_argument(
        "--trace", type=Path, help="write every event sent and received as JSON lines to this file"
    )
    demo.add_argument("--config", type=Path, help="config file to start from")
    demo.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="run the fake audio clock this many times faster than real time",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="give up after this many seconds of audio time (default: %(default)s)",
    )
    demo.add_argument("--reply-text", help="what the simulator answers")
    demo.add_argument(
        "--voice-engine",
        choices=["auto", "espeak", "tone"],
        default="auto",
        help="how the simulator speaks (default: espeak-ng when installed)",
    )
    demo.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="question",
        help="what the user says: the question (after the wake word in wake_word "
        "mode); wake-word: first without it; follow-up: a second question in the "
        "follow-up window; barge-in: over the reply (default: %(default)s)",
    )
    demo.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault,
        metavar="SPEC",
        help="make the simulator misbehave (repeatable), e.g. "
        "drop@response.output_audio.delta#3, garbage@session.updated, "
        "error:server_error@response.created, http:429:retry-after=2",
    )

    devices = sub.add_parser(
        "devices", help="audio devices, ALSA cards, I2C chips and the board that would be used"
    )
    devices.add_argument("--config", type=Path, help="config file (default: as for run)")

    selftest = sub.add_parser(
        "selftest", help="check speaker and mics, LEDs, a button, the API key and the network"
    )
    selftest.add_argument("--config", type=Path, help="config file (default: as for run)")
    selftest.add_argument(
        "--button-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for a button press (default: %(default)s)",
    )

    from device.aec_tool import add_arguments as add_aec_arguments
    from device.vad_tool import add_arguments as add_vad_arguments

    aec = sub.add_parser("aec", help="cancel the echo of REF.wav in MIC.wav (a recording)")
    add_aec_arguments(aec)

    vad = sub.add_parser("vad", help="print the speech segments of a recording")
    add_vad_arguments(vad)

    from device.ask_image import add_arguments as add_ask_image_arguments

    ask_image = sub.add_parser("ask-image", help="ask the model about a picture, print the answer")
    add_ask_image_arguments(ask_image)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate a config file and show what it sets")
    check.add_argument("path", nargs="?", type=Path, help="config file (default: as for run)")
    return parser


def _fault(spec: str) -> Fault:
    from device.realtime.sim_faults import parse_fault

    try:
        return parse_fault(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "demo":
            from device.demo import run_demo

            return run_demo(args)
        if args.command == "devices":
            return _devices(args)
        if args.command == "selftest":
            return _selftest(args)
        if args.command == "aec":
            from device.aec_tool import run_from_args

            return run_from_args(args)
        if args.command == "vad":
            from device.vad_tool import run_vad

            return run_vad(
                args.path,
                backend=args.backend,
                channel=args.channel,
                as_json=args.as_json,
                out=sys.stdout,
            )
        if args.command == "ask-image":
            from device.ask_image import run_ask_image

            return run_ask_image(args)
        return _config_check(args)
    except (ConfigError, CredentialError) as exc:
        print(f"edgevoice: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_FAILURE


def _load(path: Path | None) -> Config:
    from device.config import load_config, resolve_config_path

    resolved, _explicit = resolve_config_path(path, os.environ)
    return load_config(resolved)


def _config_check(args: argparse.Namespace) -> int:
    from device.config import config_warnings, describe

    config = _load(args.path)
    print(describe(config))
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    print("config ok")
    return EXIT_OK


def _devices(args: argparse.Namespace) -> int:
    from device.devices import devices_report

    try:
        config = _load(args.config)
    except ConfigError as exc:  # still show the hardware: it helps fix the config
        print(f"edgevoice: {exc}; showing devices without it", file=sys.stderr)
        print(devices_report())
        return EXIT_OK
    print(
        devices_report(
            board=config.device.board,
            input_device=config.audio.input_device,
            output_device=config.audio.output_device,
        )
    )
    return EXIT_OK


def _hardware_request(config: Config) -> HardwareRequest:
    from hw.factory import CameraRequest, HardwareRequest, resolve_kind

    camera = config.camera
    return HardwareRequest(
        kind=resolve_kind(config.device.hardware, os.environ),
        board=config.device.board,
        input_device=config.audio.input_device,
        output_device=config.audio.output_device,
        block_ms=config.audio.block_ms,
        camera=CameraRequest(camera.enabled, camera.image_path, camera.max_edge_px),
    )


def _selftest(args: argparse.Namespace) -> int:
    from device.credentials import load_api_key
    from device.selftest import open_connection, run_selftest, selftest_exit_code
    from hw.factory import build_hardware
    from hw.ports import HardwareError

    config = _load(args.config)
    try:
        hardware = build_hardware(_hardware_request(config))
    except (HardwareError, ImportError) as exc:
        print(f"FAIL hardware: {exc} — see `edgevoice devices`", file=sys.stderr)
        return EXIT_FAILURE
    try:
        results = asyncio.run(
            run_selftest(
                config,
                hardware,
                api_key_loader=lambda: load_api_key(config, os.environ)[0],
                connect=open_connection,
                button_timeout_s=args.button_timeout,
            )
        )
    finally:
        hardware.close()
    return selftest_exit_code(results)


def _run(args: argparse.Namespace) -> int:
    from device.app import Daemon
    from device.config import config_warnings
    from device.credentials import load_api_key
    from device.logs import setup_logging
    from hw.factory import build_hardware
    from hw.ports import HardwareError

    config = _load(args.config)
    setup_logging(config.device.log_level)
    for warning in config_warnings(config):
        log.warning("%s", warning)
    api_key, key_warnings = load_api_key(config, os.environ)
    for warning in key_warnings:
        log.warning("%s", warning)
    log.info("API key from %s", api_key.source)
    try:
        hardware = build_hardware(_hardware_request(config))
    except (HardwareError, ImportError) as exc:
        print(f"edgevoice: hardware: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for note in hardware.notes:
        log.warning("%s", note)
    from device.audio.aec import AecUnavailable
    from device.audio.vad_backends import VadUnavailable

    try:
        daemon = Daemon(config, hardware, api_key.secret.reveal())
    except AecUnavailable as exc:
        hardware.close()
        print(f"edgevoice: audio.aec = {config.audio.aec!r}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except VadUnavailable as exc:
        hardware.close()
        print(f"edgevoice: vad.backend = {config.vad.backend!r}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:  # a wake word that cannot load names its own key
        hardware.close()
        print(f"edgevoice: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        asyncio.run(_serve(daemon, config.source))
    except HardwareError as exc:
        print(f"edgevoice: audio: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        hardware.close()
    return EXIT_OK


async def _serve(daemon: Daemon, config_path: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, daemon, config_path)
    await daemon.run(stop)


def _reload(daemon: Daemon, path: Path | None) -> None:
    """SIGHUP: re-read the config; a bad file keeps the running config."""
    from device.audio.aec import AecUnavailable
    from device.audio.vad_backends import VadUnavailable
    from device.config import load_config
    from device.logs import reconfigure_level

    try:
        config = load_config(path)
        pending = daemon.reload(config)
    except (ConfigError, CredentialError, AecUnavailable, VadUnavailable) as exc:
        log.error("config reload failed, keeping the running config: %s", exc)
        return
    reconfigure_level(config.device.log_level)
    for setting in pending:
        log.warning("%s changed: it takes effect after a restart", setting)
    log.info("config reloaded from %s", path or "built-in defaults")
