"""``edgevoice aec``: WAV round trips and every way an input can be refused."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from device.aec_tool import erle_db, main, processing_rate, run_aec

RATE = 16000


def write_wav(path: Path, frames: npt.NDArray[np.int16], rate: int = RATE) -> Path:
    data = frames if frames.ndim == 2 else frames[:, None]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(data.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data.astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[int, int, npt.NDArray[np.int16]]:
    with wave.open(str(path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    return rate, channels, pcm


def echo_pair(seconds: float, rate: int = RATE) -> tuple[npt.NDArray[np.int16], ...]:
    rng = np.random.default_rng(4)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None)
    ref = rng.standard_normal(n) * envelope * 4000
    delay = int(0.03 * rate)
    path = np.zeros(delay + 40)
    path[delay] = 0.6
    path[delay + 1 :] = rng.standard_normal(39) * np.exp(-np.arange(39) / 8) * 0.1
    mic = np.convolve(ref, path)[:n]
    return mic.astype(np.int16), ref.astype(np.int16)


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def test_round_trip_cancels_echo_and_prints_erle(tmp_path: Path) -> None:
    mic, ref = echo_pair(6.0)
    out, err = Lines(), Lines()
    code = run_aec(
        write_wav(tmp_path / "mic.wav", mic),
        write_wav(tmp_path / "ref.wav", ref),
        tmp_path / "out.wav",
        print_erle=True,
        out=out,
        err=err,
    )
    assert code == 0 and not err.lines
    rate, channels, cleaned = read_wav(tmp_path / "out.wav")
    assert (rate, channels, cleaned.shape[0]) == (RATE, 1, mic.shape[0])
    assert len(out.lines) == 1 and out.lines[0].startswith("ERLE: ")
    value = float(out.lines[0].split()[1])
    assert value >= 10.0  # over the whole file, the first second of learning included
    assert value == pytest.approx(erle_db(mic, cleaned, ref, RATE), abs=0.05)


def test_multichannel_mic_shorter_ref_and_a_resampled_rate(tmp_path: Path) -> None:
    rate = 44100  # no backend runs at 44.1 kHz: resampled to 48 kHz and back
    mic, ref = echo_pair(3.0, rate)
    noise = np.random.default_rng(1).integers(-3000, 3000, mic.shape[0]).astype(np.int16)
    stereo = np.stack((noise, mic), axis=1)
    code = run_aec(
        write_wav(tmp_path / "mic.wav", stereo, rate),
        write_wav(tmp_path / "ref.wav", ref[: ref.shape[0] // 2], rate),
        tmp_path / "out.wav",
        channel=1,
        out=Lines(),
        err=Lines(),
    )
    assert code == 0
    out_rate, channels, cleaned = read_wav(tmp_path / "out.wav")
    assert (out_rate, channels, cleaned.shape[0]) == (rate, 1, mic.shape[0])
    assert processing_rate("ours", rate) == 48000
    assert processing_rate("ours", 22050) == 32000


def test_none_backend_copies_the_chosen_channel(tmp_path: Path) -> None:
    mic, ref = echo_pair(1.0)
    stereo = np.stack((mic, ref), axis=1)
    code = main(
        [
            str(write_wav(tmp_path / "mic.wav", stereo)),
            str(write_wav(tmp_path / "ref.wav", stereo)),
            "-o",
            str(tmp_path / "out.wav"),
            "--backend",
            "none",
            "--ref-channel",
            "1",
        ]
    )
    assert code == 0
    assert np.array_equal(read_wav(tmp_path / "out.wav")[2], mic)


def test_silent_reference_reports_no_erle(tmp_path: Path) -> None:
    mic, _ = echo_pair(1.0)
    out = Lines()
    code = run_aec(
        write_wav(tmp_path / "mic.wav", mic),
        write_wav(tmp_path / "ref.wav", np.zeros(100, dtype=np.int16)),
        tmp_path / "out.wav",
        print_erle=True,
        out=out,
        err=Lines(),
    )
    assert code == 0 and out.lines == ["ERLE: n/a (the reference is silent)"]


def _float_wav(path: Path) -> Path:
    samples = np.zeros(1600, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, RATE, RATE * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _eight_bit_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(RATE)
        wav.writeframes(bytes(1600))
    return path


@pytest.mark.parametrize(
    ("make_mic", "make_ref", "kwargs", "needle"),
    [
        (lambda d: _float_wav(d / "m.wav"), None, {}, "32-bit float samples"),
        (lambda d: _eight_bit_wav(d / "m.wav"), None, {}, "8-bit PCM samples"),
        (lambda d: (d / "m.wav").write_bytes(b"hello") and d / "m.wav", None, {}, "not a WAV"),
        (lambda d: write_wav(d / "m.wav", np.zeros(800, np.int16), 12000), None, {}, "12000 Hz"),
        (None, lambda d: write_wav(d / "r.wav", np.zeros(800, np.int16), 48000), {}, "same rate"),
        (None, None, {"channel": 2}, "--channel 2 but the file has 1 channel"),
        (None, None, {"ref_channel": -1}, "--ref-channel -1"),
        (lambda d: d / "missing.wav", None, {}, "missing.wav"),
    ],
)
def test_unusable_inputs_exit_2_with_one_line(
    tmp_path: Path, make_mic: object, make_ref: object, kwargs: dict[str, int], needle: str
) -> None:
    good = np.zeros(1600, dtype=np.int16)
    mic = make_mic(tmp_path) if callable(make_mic) else write_wav(tmp_path / "m.wav", good)
    ref = make_ref(tmp_path) if callable(make_ref) else write_wav(tmp_path / "r.wav", good)
    err = Lines()
    code = run_aec(mic, ref, tmp_path / "out.wav", out=Lines(), err=err, **kwargs)  # type: ignore[arg-type]
    assert code == 2
    assert len(err.lines) == 1 and needle in err.lines[0]
    assert err.lines[0].startswith("edgevoice aec: ")
    assert not (tmp_path / "out.wav").exists()


def test_allowed_formats_are_named(tmp_path: Path) -> None:
    err = Lines()
    run_aec(
        _float_wav(tmp_path / "m.wav"),
        _float_wav(tmp_path / "r.wav"),
        tmp_path / "o.wav",
        out=Lines(),
        err=err,
    )
    assert "allowed: 16-bit PCM WAV at 8000" in err.lines[0]
    assert str(tmp_path / "m.wav") in err.lines[0]


def test_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    good = write_wav(tmp_path / "m.wav", np.zeros(1600, np.int16))
    err = Lines()
    assert run_aec(good, good, tmp_path / "o.wav", backend="magic", out=Lines(), err=err) == 2
    assert "unknown backend" in err.lines[0]


def test_missing_optional_backend_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def fake(module: str, package: str | None = None) -> object:
        if module.startswith("livekit"):
            raise ImportError(module)
        return real(module, package)

    monkeypatch.setattr(importlib, "import_module", fake)
    good = write_wav(tmp_path / "m.wav", np.zeros(1600, np.int16))
    err = Lines()
    assert run_aec(good, good, tmp_path / "o.wav", backend="webrtc", out=Lines(), err=err) == 1
    assert "pip install" in err.lines[0]


def test_unwritable_output_exits_2(tmp_path: Path) -> None:
    good = write_wav(tmp_path / "m.wav", np.zeros(1600, np.int16))
    err = Lines()
    code = run_aec(good, good, tmp_path / "no" / "such" / "dir" / "o.wav", out=Lines(), err=err)
    assert code == 2 and len(err.lines) == 1
