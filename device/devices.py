"""``edgevoice devices``: what audio hardware this machine has, and what would be opened.

An installer whose speaker stays silent needs to see, on one screen, the chain
the daemon follows: the cards ALSA registered, the chips answering on I2C, the
board profile that evidence selects, the PortAudio device name that profile
turns into, and whether PortAudio actually lists a device of that name with
enough channels. Each step is printed even when an earlier one fails, because
the step that breaks is the one to fix. Device matching uses the same rules as
the audio adapter (``hw.pyaudio_devices.find_device``).
"""

from __future__ import annotations

from pathlib import Path

from hw.boards import (
    BoardError,
    BoardProfile,
    alsa_card_ids,
    detect_board,
    list_boards,
    load_board,
    probe_i2c_sysfs,
)
from hw.factory import audio_device_names
from hw.ports import AudioError
from hw.pyaudio_devices import DeviceInfo, PaFactory, find_device, list_devices

I2C_BUS = 1  # the header's I2C pins; probe_i2c_sysfs explains why only this bus


def _portaudio_lines(devices: list[DeviceInfo] | None, problem: str) -> list[str]:
    if devices is None:
        return [f"PortAudio devices: not available: {problem}"]
    if not devices:
        return ["PortAudio devices: none (no sound card, or no permission for /dev/snd)"]
    lines = ["PortAudio devices:", "  index   in  out  rate Hz  host API  name"]
    for d in devices:
        lines.append(
            f"  {d.index:5d}  {d.max_input_channels:3d}  {d.max_output_channels:3d}"
            f"  {d.default_rate_hz:7.0f}  {d.host_api:<8}  {d.name}"
        )
    return lines


def _board(name: str, i2c: set[int], cards: list[str]) -> tuple[BoardProfile | None, str]:
    """The board profile and how it was chosen, or None and what to do."""
    if name != "auto":
        try:
            return load_board(name), "from device.board"
        except BoardError as exc:
            return None, f"device.board: {exc}"
    board = detect_board(i2c, cards)
    if board is None:
        return None, f"none detected: set device.board; boards: {', '.join(list_boards())}"
    return board, "detected"


def _match(devices: list[DeviceInfo] | None, wanted: str, in_ch: int, out_ch: int) -> str:
    if devices is None:
        return "cannot check without PortAudio"
    found = find_device(devices, wanted, in_ch, out_ch)
    if found is None:
        need = " and ".join(
            f"{n} {side} ch" for n, side in ((in_ch, "input"), (out_ch, "output")) if n
        )
        return f"NO PortAudio device matches with {need} (is the card's overlay loaded?)"
    return f"PortAudio device {found.index} {found.name!r}"


def _open_lines(
    board: BoardProfile,
    devices: list[DeviceInfo] | None,
    input_device: str,
    output_device: str,
    asound: Path,
) -> list[str]:
    rate_hz = board.rates_hz[0]
    mic, dac = audio_device_names(board, input_device, output_device, asound)
    if dac is None:
        ch = max(board.input_channels, board.output_channels)
        return [
            f"would open: one full-duplex stream on {mic!r}, {ch} ch at {rate_hz} Hz, "
            f"{board.sample_width_bits}-bit",
            f"  -> {_match(devices, mic, ch, ch)}",
        ]
    return [
        f"would open: capture on {mic!r} ({board.input_channels} ch) and playback on "
        f"{dac!r} ({board.output_channels} ch) at {rate_hz} Hz, two clocks",
        f"  capture  -> {_match(devices, mic, board.input_channels, 0)}",
        f"  playback -> {_match(devices, dac, 0, board.output_channels)}",
    ]


def devices_report(
    *,
    pa_factory: PaFactory | None = None,
    asound: Path = Path("/proc/asound"),
    i2c_root: Path = Path("/sys/bus/i2c/devices"),
    board: str = "auto",
    input_device: str = "",
    output_device: str = "",
) -> str:
    """The report, as lines of text; never raises for missing hardware or PortAudio.

    ``board``, ``input_device`` and ``output_device`` are the config's
    ``device.board``, ``audio.input_device`` and ``audio.output_device``.
    """
    devices: list[DeviceInfo] | None
    try:
        devices, problem = list_devices(pa_factory), ""
    except AudioError as exc:
        devices, problem = None, str(exc)
    cards = alsa_card_ids(asound)
    i2c = probe_i2c_sysfs(i2c_root, bus=I2C_BUS)
    lines = _portaudio_lines(devices, problem)
    no_cards = f"none (nothing in {asound / 'cards'})"
    lines.append(f"ALSA cards: {', '.join(cards) or no_cards}")
    addresses = ", ".join(f"0x{a:02x}" for a in sorted(i2c))
    lines.append(f"I2C devices with a driver on bus {I2C_BUS}: {addresses or 'none'}")
    profile, how = _board(board, i2c, cards)
    if profile is None:
        lines.append(f"board: {how}")
    else:
        lines.append(f"board: {profile.name} ({profile.title}), {how}")
        lines += _open_lines(profile, devices, input_device, output_device, asound)
    return "\n".join(lines)


__all__ = ["devices_report"]
