"""``edgevoice aec MIC.wav REF.wav -o OUT.wav``: cancel the echo of REF in MIC.

MIC is what the microphones recorded (mono, or pick a channel of a multi-channel
file with ``--channel``); REF is what the speaker played (mono, or pick with
``--ref-channel``). Both are 16-bit PCM WAVs at the same rate. REF is padded
with silence or cut to MIC's length. A backend that does not run at the files'
rate gets both resampled (libsoxr) to the nearest rate it runs at, and the
result back, so OUT is always written at MIC's rate: mono, 16-bit PCM.

``--erle`` prints the echo return loss enhancement, 10·log10 of the microphone
power over the output power, on the 10 ms frames where the reference is active.

Exit codes: 0 ok, 1 a backend that is not installed, 2 an unusable input file
or argument.
"""

from __future__ import annotations

import argparse
import math
import sys
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.audio.aec import BACKENDS, AecUnavailable, make_canceller, supported_rates
from device.audio.frames import Pcm
from device.audio.resample import resample
from device.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

RATES_HZ = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_CHANNELS = 16
FRAME_MS = 10
REF_ACTIVE_RMS = 33.0  # int16 units, about -60 dBFS
ALLOWED = f"16-bit PCM WAV at {', '.join(str(r) for r in RATES_HZ)} Hz, 1-{MAX_CHANNELS} channels"

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE


class InputError(Exception):
    """An unusable input; ``str()`` is one line naming the file and what is allowed."""


@dataclass(frozen=True)
class Recording:
    rate_hz: int
    channels: int
    samples: Pcm
    """The chosen channel, mono int16."""


def _format_tag(path: Path) -> tuple[int, int]:
    """(format tag, bits per sample) from the fmt chunk, which ``wave`` hides."""
    data = path.read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InputError(f"{path}: not a WAV file; allowed: {ALLOWED}")
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"fmt " and size >= 16:
            fmt = data[pos + 8 : pos + 8 + size]
            tag = int.from_bytes(fmt[0:2], "little")
            bits = int.from_bytes(fmt[14:16], "little")
            if tag == _EXTENSIBLE and len(fmt) >= 26:
                tag = int.from_bytes(fmt[24:26], "little")
            return tag, bits
        pos += 8 + size + (size & 1)
    raise InputError(f"{path}: WAV file without a fmt chunk; allowed: {ALLOWED}")


def read_recording(path: Path, channel: int, option: str) -> Recording:
    """Read one channel of a PCM16 WAV. Raises InputError (and OSError)."""
    tag, bits = _format_tag(path)
    if tag == _FLOAT:
        raise InputError(f"{path}: {bits}-bit float samples; allowed: {ALLOWED}")
    if tag != _PCM:
        raise InputError(f"{path}: compressed samples (format {tag}); allowed: {ALLOWED}")
    if bits != 16:
        raise InputError(f"{path}: {bits}-bit PCM samples; allowed: {ALLOWED}")
    try:
        with wave.open(str(path), "rb") as wav:
            rate_hz = wav.getframerate()
            channels = wav.getnchannels()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InputError(f"{path}: unreadable WAV ({exc}); allowed: {ALLOWED}") from exc
    if rate_hz not in RATES_HZ:
        raise InputError(f"{path}: {rate_hz} Hz; allowed: {ALLOWED}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(f"{path}: {channels} channels; allowed: {ALLOWED}")
    if not 0 <= channel < channels:
        raise InputError(
            f"{path}: {option} {channel} but the file has {channels} channel(s) (0..{channels - 1})"
        )
    whole = len(raw) // (2 * channels) * 2 * channels
    frames = np.frombuffer(raw[:whole], dtype="<i2").reshape(-1, channels)
    return Recording(rate_hz, channels, frames[:, channel].astype(np.int16))


def write_mono(path: Path, samples: Pcm, rate_hz: int) -> None:
    with path.open("wb") as handle, wave.open(handle, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(samples.astype("<i2", copy=False).tobytes())


def processing_rate(backend: str, rate_hz: int) -> int:
    """The file's rate if the backend runs at it, else the nearest rate above (or
    the highest) so no band of the recording is lost."""
    rates = supported_rates(backend)
    if rate_hz in rates:
        return rate_hz
    above = [r for r in rates if r > rate_hz]
    return min(above) if above else max(rates)


def cancel(mic: Pcm, ref: Pcm, rate_hz: int, backend: str) -> Pcm:
    """Run a backend over whole signals (``ref`` as long as ``mic``) at ``rate_hz``."""
    work_hz = processing_rate(backend, rate_hz)
    canceller = make_canceller(backend, work_hz)
    m = resample(mic, rate_hz, work_hz)
    r = resample(ref, rate_hz, work_hz)
    r = _fit(r, m.shape[0])
    n = canceller.frame_frames
    frames = -(-m.shape[0] // n)
    m = _fit(m, frames * n)
    r = _fit(r, frames * n)
    out = np.empty_like(m)
    for i in range(frames):
        block = slice(i * n, (i + 1) * n)
        out[block] = canceller.process(m[block], r[block])
    work_len = -(-mic.shape[0] * work_hz // rate_hz)
    back = resample(out[:work_len], work_hz, rate_hz)
    return _fit(back, mic.shape[0])


def _fit(samples: Pcm, length: int) -> Pcm:
    if samples.shape[0] >= length:
        return samples[:length]
    return np.concatenate((samples, np.zeros(length - samples.shape[0], dtype=np.int16)))


def erle_db(mic: Pcm, out: Pcm, ref: Pcm, rate_hz: int) -> float | None:
    """ERLE over the 10 ms frames where the reference is active; None if it never is."""
    n = rate_hz * FRAME_MS // 1000
    frames = min(mic.shape[0], out.shape[0], ref.shape[0]) // n
    if frames == 0:
        return None

    def power(x: Pcm) -> npt.NDArray[np.float64]:
        blocks = x[: frames * n].astype(np.float64).reshape(frames, n)
        result: npt.NDArray[np.float64] = np.mean(blocks * blocks, axis=1)
        return result

    active = power(ref) > REF_ACTIVE_RMS * REF_ACTIVE_RMS
    if not active.any():
        return None
    mic_power = float(power(mic)[active].sum())
    out_power = float(power(out)[active].sum())
    if mic_power <= 0.0:
        return 0.0
    if out_power <= 0.0:
        return math.inf
    return 10.0 * math.log10(mic_power / out_power)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def run_aec(
    mic_path: Path | str,
    ref_path: Path | str,
    out_path: Path | str,
    *,
    backend: str = "ours",
    channel: int = 0,
    ref_channel: int = 0,
    print_erle: bool = False,
    out: Callable[[str], object] = print,
    err: Callable[[str], object] = _stderr,
) -> int:
    """The ``edgevoice aec`` command; returns the exit code."""
    mic_path, ref_path, out_path = Path(mic_path), Path(ref_path), Path(out_path)
    if backend not in BACKENDS:
        err(f"edgevoice aec: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        return EXIT_USAGE
    try:
        mic = read_recording(mic_path, channel, "--channel")
        ref = read_recording(ref_path, ref_channel, "--ref-channel")
        if mic.rate_hz != ref.rate_hz:
            raise InputError(
                f"{ref_path}: {ref.rate_hz} Hz but {mic_path} is {mic.rate_hz} Hz; "
                "both files must have the same rate"
            )
        ref_samples = _fit(ref.samples, mic.samples.shape[0])
        cleaned = cancel(mic.samples, ref_samples, mic.rate_hz, backend)
        write_mono(out_path, cleaned, mic.rate_hz)
    except InputError as exc:
        err(f"edgevoice aec: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        name = exc.filename if exc.filename is not None else out_path
        err(f"edgevoice aec: {name}: {exc.strerror or exc}")
        return EXIT_USAGE
    except AecUnavailable as exc:
        err(f"edgevoice aec: {exc}")
        return EXIT_FAILURE
    if print_erle:
        value = erle_db(mic.samples, cleaned, ref_samples, mic.rate_hz)
        if value is None:
            out("ERLE: n/a (the reference is silent)")
        else:
            out(f"ERLE: {value:.1f} dB")
    return EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``aec`` subcommand's arguments."""
    parser.add_argument(
        "mic", type=Path, metavar="MIC.wav", help=f"microphone recording: {ALLOWED}"
    )
    parser.add_argument(
        "ref", type=Path, metavar="REF.wav", help="what the speaker played, same rate as MIC"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUT.wav",
        help="echo-cancelled microphone, mono 16-bit at MIC's rate",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="ours",
        help="echo canceller (default: %(default)s; webrtc needs livekit, speex needs speexdsp)",
    )
    parser.add_argument(
        "--channel",
        type=int,
        default=0,
        metavar="N",
        help="channel of a multi-channel MIC, from 0 (default: %(default)s)",
    )
    parser.add_argument(
        "--ref-channel",
        type=int,
        default=0,
        metavar="N",
        help="channel of a multi-channel REF, from 0 (default: %(default)s)",
    )
    parser.add_argument(
        "--erle",
        action="store_true",
        help="print the ERLE in dB over frames where the reference is active",
    )


def run_from_args(args: argparse.Namespace) -> int:
    return run_aec(
        args.mic,
        args.ref,
        args.output,
        backend=args.backend,
        channel=args.channel,
        ref_channel=args.ref_channel,
        print_erle=args.erle,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edgevoice aec",
        description="Cancel the echo of REF.wav in MIC.wav and write OUT.wav.",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
