"""Echo-cancellation scenes: what the mic hears while the speaker talks, built from parts.

A scene is the reference (the exact samples handed to the DAC) and the mic signal,
plus the parts the mic signal was mixed from (echo, the user's speech, noise), so
the metrics can tell them apart. Its timeline, in order:

    lead      noise only
    far A     far-end speech only, echo path A (convergence, then steady state)
    far B     the echo path changes to B at its start (re-convergence)
    double    far-end speech and the user together, the user 10 dB below the echo
    gap       far-end stops (a barge-in stops playback); the user goes on
    near      the user alone (nothing may be removed)

Speech comes from espeak-ng (several voices for the far end, another for the user);
echo paths from pyroomacoustics shoebox rooms, then a bulk delay, optionally a
loudspeaker non-linearity; pink noise on top. Everything is seeded and cached under
``out/bench/`` so a rerun only processes. Without espeak-ng or pyroomacoustics the
generator falls back to synthetic speech or a synthetic room and says so in
``Scene.notes``: such numbers are not comparable with real-speech ones.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from metrics import Signal, active_level_dbfs

Pcm = npt.NDArray[np.int16]

GENERATOR_VERSION = 3
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO_ROOT / "out" / "bench"

REFERENCE_LEVEL_DBFS = -20.0
"""Active level of the far-end speech handed to the DAC."""
DOUBLE_TALK_BELOW_ECHO_DB = 10.0
PATH_B_GAIN_DB = -6.0
"""Path B: the device moved to another spot and its analog volume turned down 6 dB
(after the reference tap), so even the direct path no longer matches."""
QUIET_FLOOR_DBFS = -80.0
"""Noise floor of a quiet room through a good MEMS mic: low enough that ERLE reads
the canceller, not the room."""

FAR_VOICES = ("en-us", "en-gb+m3", "en+f2", "en-us+m7")
NEAR_VOICE = "en-gb-x-rp+f4"
FAR_SENTENCES = (
    "The weather tomorrow looks dry, with a light wind from the west.",
    "I have set a timer for twelve minutes, starting now.",
    "Your next meeting is at half past three in the small conference room.",
    "Here is a song you might like, from an album released last spring.",
    "The train to the city leaves every fifteen minutes until midnight.",
    "Sorry, I did not catch that. Could you say it again, a little slower?",
    "Turning the kitchen lights to forty percent, and the hallway off.",
    "A quick reminder: the library closes early on Saturdays.",
)
NEAR_SENTENCES = (
    "Stop. Wait a moment, I want to ask something else.",
    "What is the capital of Australia, and how far is it from Sydney?",
    "Please add milk, eggs and coffee to the shopping list.",
    "Never mind, just tell me the time.",
)


@dataclass(frozen=True)
class Timeline:
    lead_s: float
    far_a_s: float
    far_b_s: float
    double_talk_s: float
    gap_s: float
    near_only_s: float
    steady_s: float
    """Steady-state ERLE is read on the last ``steady_s`` of far A."""

    @property
    def total_s(self) -> float:
        return (
            self.lead_s
            + self.far_a_s
            + self.far_b_s
            + self.double_talk_s
            + self.gap_s
            + self.near_only_s
        )


FULL = Timeline(
    lead_s=0.5,
    far_a_s=10.0,
    far_b_s=5.0,
    double_talk_s=5.0,
    gap_s=0.5,
    near_only_s=4.0,
    steady_s=5.0,
)
QUICK = Timeline(
    lead_s=0.5,
    far_a_s=5.0,
    far_b_s=3.0,
    double_talk_s=3.0,
    gap_s=0.5,
    near_only_s=2.5,
    steady_s=2.5,
)


@dataclass(frozen=True)
class SceneSpec:
    name: str
    description: str
    speaker_distance_m: float = 0.07
    bulk_delay_ms: float = 40.0
    nonlinear: bool = False
    echo_level_dbfs: float = -21.0
    """Active level of the echo at the mic on path A."""
    noise_dbfs: float | None = QUIET_FLOOR_DBFS
    """Pink noise RMS; None when ``near_snr_db`` sets it instead."""
    near_snr_db: float | None = None
    """Pink noise this many dB below the user's active level."""
    seed: int = 1
    """Pauses between utterances and the noise; the same in every scene, so scenes
    differ only in what their description names."""


CATALOG: tuple[SceneSpec, ...] = (
    SceneSpec("near-40ms", "loudspeaker 7 cm from the mic, 40 ms bulk delay, quiet room"),
    SceneSpec("near-120ms", "as near-40ms with a 120 ms bulk delay", bulk_delay_ms=120.0),
    SceneSpec("near-nonlinear", "as near-40ms, loudspeaker soft clipping (tanh)", nonlinear=True),
    SceneSpec(
        "far-1.5m",
        "loudspeaker 1.5 m from the mic, 40 ms bulk delay, quiet room",
        speaker_distance_m=1.5,
        echo_level_dbfs=-29.0,
    ),
    SceneSpec("near-noise50", "as near-40ms with pink room noise at -50 dBFS", noise_dbfs=-50.0),
    SceneSpec(
        "near-snr5",
        "as near-40ms with pink noise 5 dB below the user (robustness)",
        noise_dbfs=None,
        near_snr_db=5.0,
    ),
)
SUBSET_48K = ("near-40ms", "near-nonlinear")
QUICK_SCENES = ("near-40ms", "near-nonlinear")


@dataclass
class Scene:
    spec: SceneSpec
    rate_hz: int
    timeline: Timeline
    reference: Pcm
    mic: Pcm
    echo: Signal
    near: Signal
    noise: Signal
    marks: dict[str, int]
    """Sample indices: far_start, steady_start, change, double_start, far_stop,
    near_only_start, end."""
    notes: list[str] = field(default_factory=list)

    @property
    def frame_frames(self) -> int:
        return self.rate_hz // 100

    @property
    def duration_s(self) -> float:
        return float(self.mic.shape[0] / self.rate_hz)


# --- speech ------------------------------------------------------------------------


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _read_wav_mono(path: Path) -> tuple[Signal, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM")
        raw = w.readframes(w.getnframes())
        channels = w.getnchannels()
        rate = w.getframerate()
    data = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    return data.reshape(-1, channels).mean(axis=1), rate


def _resample(x: Signal, from_hz: int, to_hz: int) -> Signal:
    if from_hz == to_hz:
        return x
    import soxr

    return np.asarray(soxr.resample(x, from_hz, to_hz, quality="VHQ"), dtype=np.float64)


def _trim(x: Signal, below_peak_db: float = 50.0) -> Signal:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= 0.0:
        return x
    loud = np.nonzero(np.abs(x) >= peak * 10 ** (-below_peak_db / 20))[0]
    return x[loud[0] : loud[-1] + 1]


def espeak_utterance(text: str, voice: str, rate_hz: int, cache: Path) -> Signal:
    """One espeak-ng utterance at ``rate_hz``, silence trimmed, cached as .npy."""
    key = hashlib.sha256(f"{voice}|{text}|{rate_hz}|165".encode()).hexdigest()[:16]
    target = cache / "speech" / f"{key}.npy"
    if target.exists():
        return np.asarray(np.load(target), dtype=np.float64)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "u.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", "165", "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        data, rate = _read_wav_mono(wav)
    speech = _trim(_resample(data, rate, rate_hz))
    np.save(target, speech.astype(np.float32))
    return speech


def synthetic_utterance(
    rate_hz: int, seconds: float, f0_hz: float, rng: np.random.Generator
) -> Signal:
    """A speech-shaped stand-in: a harmonic complex with a gliding pitch, a -6 dB per
    octave tilt, 4 Hz syllables and a little breath noise. Used only without espeak-ng."""
    n = int(seconds * rate_hz)
    t = np.arange(n) / rate_hz
    f0 = f0_hz * (1.0 + 0.12 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.28)))
    phase = 2 * np.pi * np.cumsum(f0) / rate_hz
    voiced = np.zeros(n)
    for k in range(1, 40):
        ok = k * f0 < 0.45 * rate_hz
        voiced += np.where(ok, np.sin(k * phase) / k, 0.0)
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.28)), 0.0, None) ** 1.5
    breath = 0.05 * rng.standard_normal(n)
    return (voiced + breath) * syllables


def speech_stream(
    sentences: tuple[str, ...],
    voices: tuple[str, ...],
    rate_hz: int,
    seconds: float,
    cache: Path,
    rng: np.random.Generator,
    use_espeak: bool,
) -> Signal:
    """Utterances back to back (voices taking turns, 0.15-0.4 s pauses, each at the
    same active level) until ``seconds`` are filled; cut there with a 10 ms fade."""
    n = round(seconds * rate_hz)
    parts: list[Signal] = []
    total = 0
    i = 0
    frame = rate_hz // 100
    while total < n:
        if use_espeak:
            u = espeak_utterance(
                sentences[i % len(sentences)], voices[i % len(voices)], rate_hz, cache
            )
        else:
            f0 = (110.0, 210.0, 160.0, 95.0)[i % 4] if len(voices) > 1 else 190.0
            u = synthetic_utterance(rate_hz, float(rng.uniform(1.5, 3.0)), f0, rng)
        u = u * 10 ** ((-20.0 - active_level_dbfs(u, frame)) / 20)
        gap = np.zeros(int(rng.uniform(0.15, 0.4) * rate_hz))
        parts += [u, gap]
        total += u.size + gap.size
        i += 1
    out = np.concatenate(parts)[:n].copy()
    fade = min(frame, n)
    out[n - fade :] *= np.linspace(1.0, 0.0, fade)
    return out


# --- rooms -------------------------------------------------------------------------

ROOM_DIM_M = (5.0, 4.0, 2.6)
ROOM_RT60_S = 0.35
MIC_A = (1.2, 1.6, 0.9)
MIC_B_NEAR = (3.4, 2.5, 0.75)
USER_OFFSET = (-0.8, 0.6, 0.3)


def _unit(v: tuple[float, float, float]) -> npt.NDArray[np.float64]:
    a = np.asarray(v, dtype=np.float64)
    return a / float(np.linalg.norm(a))


def geometry(distance_m: float) -> dict[str, list[float]]:
    """Mic and loudspeaker positions for paths A and B, and the user's position
    (about 1 m from the mic of path B, where double talk happens)."""
    mic_a = np.asarray(MIC_A)
    if distance_m < 0.5:
        # A smart speaker: the mic rides with the loudspeaker; path B moves the device.
        mic_b = np.asarray(MIC_B_NEAR)
        spk_a = mic_a + distance_m * _unit((1.0, 0.0, -0.3))
        spk_b = mic_b + distance_m * _unit((0.0, 1.0, -0.3))
    else:
        # A separate loudspeaker: path B moves it to another spot at the same distance.
        mic_b = mic_a
        spk_a = mic_a + distance_m * _unit((1.0, 0.0, 0.05))
        spk_b = mic_a + distance_m * _unit((0.55, 0.85, 0.1))
    user = mic_b + np.asarray(USER_OFFSET)
    return {
        "mic_a": mic_a.tolist(),
        "spk_a": spk_a.tolist(),
        "mic_b": mic_b.tolist(),
        "spk_b": spk_b.tolist(),
        "user": user.tolist(),
    }


def pyroomacoustics_available() -> bool:
    try:
        import pyroomacoustics  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def room_rir(source: list[float], mic: list[float], rate_hz: int) -> Signal:
    """Impulse response from ``source`` to ``mic`` in the shoebox room (image method)."""
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(ROOM_RT60_S, list(ROOM_DIM_M))
    room = pra.ShoeBox(
        list(ROOM_DIM_M), fs=rate_hz, materials=pra.Material(absorption), max_order=max_order
    )
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float64)


def synthetic_rir(source: list[float], mic: list[float], rate_hz: int, seed: int) -> Signal:
    """A direct path (1/r, delayed by distance) plus an exponentially decaying noise
    tail with the room's RT60. A stand-in when pyroomacoustics is missing."""
    rng = np.random.default_rng(seed)
    distance = float(np.linalg.norm(np.subtract(source, mic)))
    n = int(ROOM_RT60_S * 1.5 * rate_hz)
    h = np.zeros(n)
    first = round(distance / 343.0 * rate_hz) + 1
    h[first] = 1.0 / max(distance, 0.05)
    t = np.arange(n - first - 1) / rate_hz
    tail = rng.standard_normal(t.size) * np.exp(-6.9 * t / ROOM_RT60_S)
    h[first + 1 :] = 0.08 * tail / np.sqrt(rate_hz / 16000)
    return h


def rirs(spec: SceneSpec, rate_hz: int, cache: Path, real_room: bool) -> dict[str, Signal]:
    """Impulse responses for path A, path B and the user, cached as .npy."""
    geo = geometry(spec.speaker_distance_m)
    pairs = {"a": ("spk_a", "mic_a"), "b": ("spk_b", "mic_b"), "user": ("user", "mic_b")}
    out: dict[str, Signal] = {}
    for key, (src, mic) in pairs.items():
        tag = json.dumps(
            [geo[src], geo[mic], rate_hz, ROOM_DIM_M, ROOM_RT60_S, real_room, spec.seed]
        )
        name = hashlib.sha256(tag.encode()).hexdigest()[:16]
        path = cache / "rir" / f"{name}.npy"
        if path.exists():
            out[key] = np.asarray(np.load(path), dtype=np.float64)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        h = (
            room_rir(geo[src], geo[mic], rate_hz)
            if real_room
            else synthetic_rir(geo[src], geo[mic], rate_hz, spec.seed)
        )
        np.save(path, h)
        out[key] = h
    return out


# --- signal helpers ----------------------------------------------------------------


def fft_convolve(x: Signal, h: Signal) -> Signal:
    """Linear convolution truncated to ``len(x)``."""
    size = 1 << int(np.ceil(np.log2(x.size + h.size - 1)))
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)
    return np.asarray(y[: x.size], dtype=np.float64)


def delay(x: Signal, samples: int) -> Signal:
    return np.concatenate((np.zeros(samples), x[: x.size - samples]))


def pink_noise(n: int, rng: np.random.Generator) -> Signal:
    """Unit-RMS pink (1/f power) noise."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    x -= x.mean()
    return np.asarray(x / np.sqrt(np.mean(x * x)), dtype=np.float64)


LOUDSPEAKER_DRIVE = 1.2
LOUDSPEAKER_EVEN = 0.05


def loudspeaker(x: Signal) -> Signal:
    """A small loudspeaker pushed hard: tanh soft clipping plus a little even-order
    distortion (an asymmetric cone), memoryless."""
    return np.tanh(LOUDSPEAKER_DRIVE * x) / LOUDSPEAKER_DRIVE + LOUDSPEAKER_EVEN * x * x


def distortion_db(x: Signal, y: Signal) -> float:
    """How far below the best linear fit of ``y`` on ``x`` its leftover lies, in dB."""
    gain = float(y @ x) / float(x @ x)
    rest = y - gain * x
    return float(10 * np.log10(float(rest @ rest) / float((gain * x) @ (gain * x))))


def to_pcm(x: Signal) -> Pcm:
    scaled = np.rint(np.clip(x, -1.0, 32767 / 32768) * 32768.0)
    return scaled.astype(np.int16)


# --- assembling a scene ------------------------------------------------------------


def _marks(tl: Timeline, rate_hz: int) -> dict[str, int]:
    def at(s: float) -> int:
        return round(s * rate_hz)

    far_start = at(tl.lead_s)
    change = at(tl.lead_s + tl.far_a_s)
    double_start = at(tl.lead_s + tl.far_a_s + tl.far_b_s)
    far_stop = at(tl.lead_s + tl.far_a_s + tl.far_b_s + tl.double_talk_s)
    near_only_start = at(tl.total_s - tl.near_only_s)
    return {
        "far_start": far_start,
        "steady_start": change - at(tl.steady_s),
        "change": change,
        "double_start": double_start,
        "far_stop": far_stop,
        "near_only_start": near_only_start,
        "end": at(tl.total_s),
    }


def _cache_key(
    spec: SceneSpec, rate_hz: int, tl: Timeline, use_espeak: bool, real_room: bool
) -> str:
    tag = json.dumps(
        [GENERATOR_VERSION, asdict(spec), rate_hz, asdict(tl), use_espeak, real_room],
        sort_keys=True,
    )
    return hashlib.sha256(tag.encode()).hexdigest()[:16]


def build_scene(
    spec: SceneSpec,
    rate_hz: int,
    timeline: Timeline = FULL,
    cache: Path = DEFAULT_CACHE,
    use_espeak: bool | None = None,
    real_room: bool | None = None,
) -> Scene:
    """Generate (or load from the cache) one scene at ``rate_hz``.

    ``use_espeak`` and ``real_room`` default to whatever is installed; passing False
    forces the synthetic stand-ins (quick and dependency-free).
    """
    if rate_hz % 100:
        raise ValueError(f"rate_hz must give whole 10 ms frames, got {rate_hz}")
    espeak = espeak_available() if use_espeak is None else use_espeak
    room = pyroomacoustics_available() if real_room is None else real_room
    key = _cache_key(spec, rate_hz, timeline, espeak, room)
    path = cache / "scenes" / f"{spec.name}-{rate_hz}-{key}.npz"
    if path.exists():
        return _load(path, spec, rate_hz, timeline)
    scene = _generate(spec, rate_hz, timeline, cache, espeak, room)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(path, scene)
    return scene


def _generate(
    spec: SceneSpec, rate_hz: int, tl: Timeline, cache: Path, espeak: bool, room: bool
) -> Scene:
    rng = np.random.default_rng(spec.seed)
    marks = _marks(tl, rate_hz)
    n = marks["end"]
    frame = rate_hz // 100
    notes: list[str] = []
    if not espeak:
        notes.append("espeak-ng missing: synthetic speech-shaped signals, not comparable")
    if not room:
        notes.append("pyroomacoustics missing: synthetic room responses, not comparable")

    far_n = marks["far_stop"] - marks["far_start"]
    far = speech_stream(FAR_SENTENCES, FAR_VOICES, rate_hz, far_n / rate_hz, cache, rng, espeak)
    reference = np.zeros(n)
    reference[marks["far_start"] : marks["far_stop"]] = far
    reference *= 10 ** ((REFERENCE_LEVEL_DBFS - active_level_dbfs(reference, frame)) / 20)
    ref_pcm = to_pcm(reference)
    reference = ref_pcm.astype(np.float64) / 32768.0

    driven = loudspeaker(reference) if spec.nonlinear else reference
    if spec.nonlinear:
        notes.append(
            f"loudspeaker distortion {distortion_db(reference, driven):.1f} dB "
            "below the linear part"
        )
    h = rirs(spec, rate_hz, cache, room)
    bulk = round(spec.bulk_delay_ms * rate_hz / 1000)
    echo_a = delay(fft_convolve(driven, h["a"]), bulk)
    echo_b = delay(fft_convolve(driven, h["b"]), bulk) * 10 ** (PATH_B_GAIN_DB / 20)
    far_a = slice(marks["far_start"], marks["change"])
    gain = 10 ** ((spec.echo_level_dbfs - active_level_dbfs(echo_a[far_a], frame)) / 20)
    blend = np.zeros(n)
    xfade = frame
    blend[marks["change"] :] = 1.0
    blend[marks["change"] : marks["change"] + xfade] = np.linspace(0.0, 1.0, xfade)
    echo = gain * ((1.0 - blend) * echo_a + blend * echo_b)

    near_n = n - marks["double_start"]
    user = speech_stream(
        NEAR_SENTENCES, (NEAR_VOICE,), rate_hz, near_n / rate_hz, cache, rng, espeak
    )
    user_at_mic = np.zeros(n)
    user_at_mic[marks["double_start"] :] = fft_convolve(user, h["user"])
    double = slice(marks["double_start"], marks["far_stop"])
    near_level = active_level_dbfs(echo[double], frame) - DOUBLE_TALK_BELOW_ECHO_DB
    near = user_at_mic * 10 ** ((near_level - active_level_dbfs(user_at_mic[double], frame)) / 20)

    noise_dbfs = spec.noise_dbfs
    if spec.near_snr_db is not None:
        noise_dbfs = active_level_dbfs(near[double], frame) - spec.near_snr_db
    noise = np.zeros(n) if noise_dbfs is None else pink_noise(n, rng) * 10 ** (noise_dbfs / 20)

    mix = echo + near + noise
    peak = float(np.max(np.abs(mix)))
    if peak > 0.99:
        notes.append(f"mic peaks at {20 * np.log10(peak):+.1f} dBFS and clips")
    return Scene(
        spec=spec,
        rate_hz=rate_hz,
        timeline=tl,
        reference=ref_pcm,
        mic=to_pcm(mix),
        echo=echo,
        near=near,
        noise=noise,
        marks=marks,
        notes=notes,
    )


def _save(path: Path, scene: Scene) -> None:
    meta = json.dumps({"marks": scene.marks, "notes": scene.notes})
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        reference=scene.reference,
        mic=scene.mic,
        echo=scene.echo.astype(np.float32),
        near=scene.near.astype(np.float32),
        noise=scene.noise.astype(np.float32),
        meta=np.frombuffer(meta.encode(), dtype=np.uint8),
    )
    tmp.replace(path)


def _load(path: Path, spec: SceneSpec, rate_hz: int, tl: Timeline) -> Scene:
    with np.load(path) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        return Scene(
            spec=spec,
            rate_hz=rate_hz,
            timeline=tl,
            reference=np.asarray(z["reference"], dtype=np.int16),
            mic=np.asarray(z["mic"], dtype=np.int16),
            echo=np.asarray(z["echo"], dtype=np.float64),
            near=np.asarray(z["near"], dtype=np.float64),
            noise=np.asarray(z["noise"], dtype=np.float64),
            marks={k: int(v) for k, v in meta["marks"].items()},
            notes=list(meta["notes"]),
        )


def spec_named(name: str) -> SceneSpec:
    for spec in CATALOG:
        if spec.name == name:
            return spec
    raise KeyError(f"no scene named {name!r}; known: {', '.join(s.name for s in CATALOG)}")


def plan(quick: bool, rates: list[int] | None) -> list[tuple[SceneSpec, int]]:
    """Which scenes run at which rate.

    Default: every scene at 16 kHz and a subset at 48 kHz; ``--quick`` runs a few
    scenes at 16 kHz. Naming rates runs the chosen set at each of them.
    """
    specs = [spec_named(n) for n in QUICK_SCENES] if quick else list(CATALOG)
    if rates:
        return [(s, r) for r in rates for s in specs]
    out = [(s, 16000) for s in specs]
    if not quick:
        out += [(spec_named(n), 48000) for n in SUBSET_48K]
    return out
