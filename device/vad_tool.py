"""``edgevoice vad IN.wav``: where the voice gate hears speech in a recording.

Prints one ``start_s end_s`` line per utterance, or with ``--json`` exactly
``{"segments": [[start_s, end_s], ...]}`` on stdout. Utterances are what the
daemon's voice gate opens for (defaults of :class:`device.audio.vad.VadGate`:
60 ms of speech to start, pauses under 800 ms bridged); a segment runs from the
first speech frame to the end of the last one, in seconds, to 10 ms.

Input: a 16-bit PCM WAV at any rate from 8 to 192 kHz (it is resampled to
16 kHz with libsoxr). A multi-channel file needs ``--channel N``: on mic-array
HATs some channels are loopback references of the speaker, so no channel is
picked silently.

Exit codes: 0 ok, 1 a backend that is not installed, 2 an unusable input file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from device.audio.frames import Pcm
from device.audio.resample import resample
from device.audio.vad import VadGate
from device.audio.vad_backends import VAD_BACKENDS, VadUnavailable, make_classifier
from device.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

MIN_RATE_HZ = 8000
MAX_RATE_HZ = 192000
ANALYSIS_RATE_HZ = 16000
FRAME_MS = 10
ALLOWED = f"16-bit PCM WAV, {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz, mono or --channel N"

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {6: "A-law", 7: "mu-law", 2: "ADPCM", 0x55: "MP3"}


class InputError(Exception):
    """The file cannot be analysed; ``str()`` is one line naming the file."""


@dataclass(frozen=True)
class Wav:
    rate_hz: int
    channels: int
    samples: Pcm
    """The chosen channel, mono int16."""


def _chunks(data: bytes, path: Path) -> dict[bytes, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InputError(f"{path}: not a WAV file; allowed: {ALLOWED}")
    found: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        name = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        # Streamed WAVs (espeak-ng --stdout, arecord to a pipe) carry a bogus size.
        body = data[pos + 8 : min(pos + 8 + size, len(data))]
        found.setdefault(name, body)
        pos += 8 + size + (size & 1)
    if b"fmt " not in found or b"data" not in found:
        raise InputError(f"{path}: WAV file without fmt or data chunk; allowed: {ALLOWED}")
    return found


def read_wav(path: Path, channel: int | None) -> Wav:
    """Read and check a WAV, returning one channel. Raises InputError, OSError."""
    chunks = _chunks(path.read_bytes(), path)
    fmt = chunks[b"fmt "]
    if len(fmt) < 16:
        raise InputError(f"{path}: truncated fmt chunk; allowed: {ALLOWED}")
    tag = int.from_bytes(fmt[0:2], "little")
    channels = int.from_bytes(fmt[2:4], "little")
    rate_hz = int.from_bytes(fmt[4:8], "little")
    bits = int.from_bytes(fmt[14:16], "little")
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = int.from_bytes(fmt[24:26], "little")
    if tag != _PCM:
        kind = f"{bits}-bit float" if tag == _FLOAT else _FORMAT_NAMES.get(tag, f"format {tag}")
        raise InputError(f"{path}: {kind} samples; allowed: {ALLOWED}")
    if bits != 16:
        raise InputError(f"{path}: {bits}-bit PCM samples; allowed: {ALLOWED}")
    if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise InputError(f"{path}: {rate_hz} Hz; allowed: {ALLOWED}")
    if channels < 1:
        raise InputError(f"{path}: no channels; allowed: {ALLOWED}")
    if channel is None and channels > 1:
        raise InputError(f"{path}: {channels} channels; pick one with --channel 0..{channels - 1}")
    index = 0 if channel is None else channel
    if not 0 <= index < channels:
        raise InputError(
            f"{path}: --channel {index} but the file has {channels} channel(s) (0..{channels - 1})"
        )
    data = chunks[b"data"]
    whole = len(data) // (2 * channels) * 2 * channels
    frames = np.frombuffer(data[:whole], dtype="<i2").reshape(-1, channels)
    return Wav(rate_hz, channels, frames[:, index].astype(np.int16))


def speech_segments(samples: Pcm, rate_hz: int, backend: str) -> list[tuple[float, float]]:
    """Utterances in seconds, as the voice gate would open for them."""
    audio = resample(samples, rate_hz, ANALYSIS_RATE_HZ)
    gate = VadGate(
        ANALYSIS_RATE_HZ, FRAME_MS, classifier=make_classifier(backend, ANALYSIS_RATE_HZ)
    )
    step = gate.frame_frames
    segments: list[tuple[float, float]] = []
    start: int | None = None
    last_speech = 0
    for index in range(audio.shape[0] // step):
        result = gate.process(audio[index * step : (index + 1) * step])
        if result.is_speech:
            last_speech = index
        if result.opened and result.onset_frame is not None:
            start = result.onset_frame
        if result.closed and start is not None:
            segments.append(_seconds(start, last_speech))
            start = None
    if start is not None:
        segments.append(_seconds(start, last_speech))
    return segments


def _seconds(first_frame: int, last_frame: int) -> tuple[float, float]:
    return (round(first_frame * FRAME_MS / 1000, 2), round((last_frame + 1) * FRAME_MS / 1000, 2))


def run_vad(
    path: Path,
    *,
    backend: str,
    channel: int | None,
    as_json: bool,
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """The ``edgevoice vad`` command; returns the exit code."""
    errors = err if err is not None else sys.stderr
    try:
        wav = read_wav(path, channel)
        segments = speech_segments(wav.samples, wav.rate_hz, backend)
    except InputError as exc:
        print(f"edgevoice vad: {exc}", file=errors)
        return EXIT_USAGE
    except OSError as exc:
        print(f"edgevoice vad: {path}: {exc.strerror or exc}", file=errors)
        return EXIT_USAGE
    except VadUnavailable as exc:
        print(f"edgevoice vad: {exc}", file=errors)
        return EXIT_FAILURE
    if as_json:
        out.write(json.dumps({"segments": [[a, b] for a, b in segments]}) + "\n")
    else:
        for a, b in segments:
            out.write(f"{a:.2f} {b:.2f}\n")
    return EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``vad`` subcommand's arguments."""
    parser.add_argument(
        "path",
        type=Path,
        metavar="IN.wav",
        help=f"recording: {ALLOWED} (other rates are resampled to 16 kHz)",
    )
    parser.add_argument(
        "--backend",
        choices=VAD_BACKENDS,
        default="webrtc",
        help="speech classifier (default: %(default)s; silero needs onnxruntime and silero-vad)",
    )
    parser.add_argument(
        "--channel",
        type=int,
        metavar="N",
        help="channel of a multi-channel file, from 0 (required for those)",
    )
    parser.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help='print {"segments": [[start_s, end_s], ...]} instead of lines',
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edgevoice vad",
        description="Print the speech segments of a recording as 'start_s end_s' lines.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_vad(
        args.path, backend=args.backend, channel=args.channel, as_json=args.as_json, out=sys.stdout
    )


if __name__ == "__main__":
    raise SystemExit(main())
