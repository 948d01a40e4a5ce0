"""``edgevoice vad``: output formats, and one clear line for every file it cannot take."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from device.audio.frames import Pcm
from device.audio.resample import resample
from device.audio.vad_backends import VadUnavailable, make_classifier
from device.vad_tool import main, read_wav, run_vad

JSON_SHAPE = re.compile(r'\{"segments": \[(\[\d+\.\d+, \d+\.\d+\](, )?)*\]\}\n')


def write_pcm16(path: Path, rate_hz: int, channels: list[Pcm]) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(len(channels))
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(np.stack(channels, axis=1).astype("<i2").tobytes())
    return path


def write_raw_wav(path: Path, tag: int, bits: int, rate_hz: int, data: bytes) -> Path:
    block = bits // 8
    fmt = (
        tag.to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + rate_hz.to_bytes(4, "little")
        + (rate_hz * block).to_bytes(4, "little")
        + block.to_bytes(2, "little")
        + bits.to_bytes(2, "little")
    )
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    body += b"data" + len(data).to_bytes(4, "little") + data
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    return path


def run(
    path: Path, backend: str = "webrtc", channel: int | None = None, as_json: bool = False
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_vad(path, backend=backend, channel=channel, as_json=as_json, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pcm, int]:
    """1 s of silence, a sentence, 1 s of silence, the sentence again, 1 s of silence;
    16-bit at espeak-ng's own rate."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("tool") / "s.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(path), "Set a timer for ten minutes."],
        check=True,
        capture_output=True,
    )
    with wave.open(str(path)) as wav:
        rate_hz = wav.getframerate()
        speech = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    quiet = np.zeros(rate_hz, dtype=np.int16)
    return np.concatenate([quiet, speech, quiet, speech, quiet]), rate_hz


def test_silence_prints_an_empty_json_list(tmp_path: Path) -> None:
    path = write_pcm16(tmp_path / "quiet.wav", 16000, [np.zeros(32000, dtype=np.int16)])
    assert run(path, as_json=True) == (0, '{"segments": []}\n', "")
    assert run(path) == (0, "", "")


@pytest.mark.parametrize("backend", ["webrtc", "silero"])
def test_json_output_is_exactly_the_segments(
    tmp_path: Path, backend: str, spoken: tuple[Pcm, int]
) -> None:
    try:
        make_classifier(backend, 16000)
    except VadUnavailable as exc:
        pytest.skip(f"{backend} backend unavailable: {exc}")
    audio, rate_hz = spoken
    path = write_pcm16(tmp_path / "speech.wav", rate_hz, [audio])
    code, out, err = run(path, backend=backend, as_json=True)
    assert code == 0 and err == ""
    assert JSON_SHAPE.fullmatch(out), out
    segments = json.loads(out)["segments"]
    assert list(json.loads(out)) == ["segments"]
    speech_s = (audio.shape[0] / rate_hz - 3) / 2
    assert len(segments) == 2
    for (start, end), expected_start in zip(segments, (1.0, 2.0 + speech_s), strict=True):
        assert expected_start - 0.05 <= start <= expected_start + 0.15
        assert end - start == pytest.approx(speech_s, abs=0.4)
    code, lines, _ = run(path, backend=backend)
    assert code == 0
    assert lines == "".join(f"{a:.2f} {b:.2f}\n" for a, b in segments)


def test_other_rates_are_resampled(tmp_path: Path, spoken: tuple[Pcm, int]) -> None:
    audio, rate_hz = spoken
    base = run(write_pcm16(tmp_path / "a.wav", rate_hz, [audio]), as_json=True)
    for target in (8000, 44100, 48000):
        moved = resample(audio, rate_hz, target)
        got = run(write_pcm16(tmp_path / f"{target}.wav", target, [moved]), as_json=True)
        assert got[0] == 0
        for (a, b), (c, d) in zip(
            json.loads(base[1])["segments"], json.loads(got[1])["segments"], strict=True
        ):
            assert abs(a - c) <= 0.05 and abs(b - d) <= 0.1


def test_channel_picks_one_of_a_multichannel_file(tmp_path: Path, spoken: tuple[Pcm, int]) -> None:
    audio, rate_hz = spoken
    quiet = np.zeros_like(audio)
    path = write_pcm16(tmp_path / "stereo.wav", rate_hz, [quiet, audio])
    assert run(path, channel=0, as_json=True)[1] == '{"segments": []}\n'
    code, out, _ = run(path, channel=1, as_json=True)
    assert code == 0 and len(json.loads(out)["segments"]) == 2


def assert_rejected(result: tuple[int, str, str], path: Path, *needles: str) -> None:
    code, out, err = result
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"edgevoice vad: {path}: ")
    for needle in needles:
        assert needle in err


def test_float_wav_is_rejected(tmp_path: Path) -> None:
    path = write_raw_wav(tmp_path / "f.wav", 3, 32, 16000, bytes(4 * 1600))
    assert_rejected(run(path), path, "32-bit float", "16-bit PCM")


def test_8_bit_wav_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "b8.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(16000)
        wav.writeframes(bytes([128]) * 1600)
    assert_rejected(run(path), path, "8-bit PCM", "16-bit PCM")


def test_too_low_a_rate_is_rejected(tmp_path: Path) -> None:
    path = write_pcm16(tmp_path / "low.wav", 4000, [np.zeros(400, dtype=np.int16)])
    assert_rejected(run(path), path, "4000 Hz", "8000-192000 Hz")


def test_stereo_needs_a_channel(tmp_path: Path) -> None:
    silent = np.zeros(1600, dtype=np.int16)
    path = write_pcm16(tmp_path / "st.wav", 16000, [silent, silent])
    assert_rejected(run(path), path, "2 channels", "--channel 0..1")
    assert_rejected(run(path, channel=2), path, "--channel 2", "0..1")


def test_not_a_wav_and_missing_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("hello")
    assert_rejected(run(text), text, "not a WAV file")
    missing = tmp_path / "missing.wav"
    assert_rejected(run(missing), missing, "No such file")


def test_streamed_wav_with_a_bogus_size_is_read(tmp_path: Path) -> None:
    path = write_raw_wav(tmp_path / "s.wav", 1, 16, 16000, bytes(3200))
    raw = bytearray(path.read_bytes())
    raw[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    assert read_wav(path, None).samples.shape == (1600,)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_pcm16(tmp_path / "quiet.wav", 48000, [np.zeros(48000, dtype=np.int16)])
    assert main([str(path), "--json", "--backend", "webrtc"]) == 0
    assert capsys.readouterr().out == '{"segments": []}\n'
    with pytest.raises(SystemExit):
        main([str(path), "--backend", "nope"])
