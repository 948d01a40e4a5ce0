"""PortAudio's device list: initialising it quietly, listing and choosing devices.

Kept apart from the stream adapter so ``edgevoice devices`` can show what a
board profile would open with exactly the matching rules the daemon uses.
PyAudio is imported only when PortAudio is initialised, so this module imports
on machines without PortAudio.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hw.ports import AudioError

PaFactory = Callable[[], Any]
"""Makes a PyAudio-like object (``pyaudio.PyAudio`` itself, or a test's stand-in)."""


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device, as ``edgevoice devices`` and error messages show it."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate_hz: float
    host_api: str


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point fd 2 at /dev/null while PortAudio initialises.

    Pa_Initialize probes every ALSA card and JACK, and ALSA and JACK print about
    80 lines straight to fd 2 (no Python involved) even when everything works;
    in the journal that noise buries the messages that matter.
    """
    if sys.stderr is not None:
        sys.stderr.flush()
    try:
        saved_fd = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to protect
        yield
        return
    try:
        devnull_fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull_fd, 2)
        os.close(devnull_fd)
        yield
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)


def _default_pa_factory() -> Any:
    try:
        import pyaudio
    except ImportError as exc:
        raise AudioError("PyAudio is not installed (pip install 'edgevoice[hw]')") from exc
    return pyaudio.PyAudio()


def new_pa(pa_factory: PaFactory | None) -> Any:
    """An initialised PortAudio; every failure becomes an AudioError saying why."""
    try:
        with _stderr_silenced():
            return (pa_factory or _default_pa_factory)()
    except AudioError:
        raise
    except Exception as exc:  # PortAudio reports init failures as OSError
        raise AudioError(f"cannot initialise PortAudio: {exc}") from exc


def enumerate_devices(pa: Any) -> list[DeviceInfo]:
    """Every device of an initialised PortAudio, with its host API's name."""
    apis = [str(pa.get_host_api_info_by_index(i)["name"]) for i in range(pa.get_host_api_count())]
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        api = apis[info["hostApi"]] if 0 <= info["hostApi"] < len(apis) else "?"
        channels = int(info["maxInputChannels"]), int(info["maxOutputChannels"])
        rate_hz = float(info["defaultSampleRate"])
        devices.append(DeviceInfo(index, str(info["name"]), *channels, rate_hz, api))
    return devices


def list_devices(pa_factory: PaFactory | None = None) -> list[DeviceInfo]:
    """Every device PortAudio sees right now (it re-scans on each call)."""
    pa = new_pa(pa_factory)
    try:
        return enumerate_devices(pa)
    finally:
        pa.terminate()


def find_device(
    devices: list[DeviceInfo], wanted: str, in_ch: int, out_ch: int
) -> DeviceInfo | None:
    """First device whose name contains ``wanted`` (an exact name wins) with enough channels."""
    key = wanted.lower()
    fits = [d for d in devices if key in d.name.lower()]
    fits = [d for d in fits if d.max_input_channels >= in_ch and d.max_output_channels >= out_ch]
    return next(iter([d for d in fits if d.name.lower() == key] or fits), None)


def device_not_found(devices: list[DeviceInfo], wanted: str, in_ch: int, out_ch: int) -> AudioError:
    """An AudioError naming what was wanted and every device that could have been meant."""
    need = [f">= {n} {side} channels" for n, side in ((in_ch, "input"), (out_ch, "output")) if n]
    ins = [f"{d.index} {d.name!r} ({d.max_input_channels} ch)" for d in devices]
    outs = [f"{d.index} {d.name!r} ({d.max_output_channels} ch)" for d in devices]
    ins = [text for text, d in zip(ins, devices, strict=True) if d.max_input_channels]
    outs = [text for text, d in zip(outs, devices, strict=True) if d.max_output_channels]
    return AudioError(
        f"no audio device with {wanted!r} in its name and {' and '.join(need)}; "
        f"input devices: {', '.join(ins) or 'none'}; output devices: {', '.join(outs) or 'none'}"
    )


__all__ = [
    "DeviceInfo",
    "PaFactory",
    "device_not_found",
    "enumerate_devices",
    "find_device",
    "list_devices",
    "new_pa",
]
