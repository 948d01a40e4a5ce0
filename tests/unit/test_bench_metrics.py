"""The echo-cancellation benchmark's metrics on signals with known answers, and a
smoke run of its scene generator and harness on a tiny synthetic scene."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"
sys.path.insert(0, str(BENCH))

import aec_bench  # noqa: E402
import metrics as mt  # noqa: E402
import scenes as sc  # noqa: E402

RATE = 16000
FRAME = RATE // 100


def noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n) * 0.1


# --- ERLE ---------------------------------------------------------------------------


@pytest.mark.parametrize("attenuation_db", [0.0, 6.0, 30.0, 55.0])
def test_erle_of_a_known_attenuation(attenuation_db: float) -> None:
    mic = noise(RATE)
    out = mic * 10 ** (-attenuation_db / 20)
    assert mt.erle_db(mic, out, FRAME, None) == pytest.approx(attenuation_db, abs=1e-9)


def test_erle_reads_only_the_masked_frames() -> None:
    mic = noise(RATE)
    out = mic.copy()
    out[: RATE // 2] *= 0.01  # 40 dB in the first half, nothing in the second
    mask = np.zeros(100, dtype=bool)
    mask[:50] = True
    assert mt.erle_db(mic, out, FRAME, mask) == pytest.approx(40.0)
    assert mt.erle_db(mic, out, FRAME, ~mask) == pytest.approx(0.0)
    assert np.isnan(mt.erle_db(mic, out, FRAME, np.zeros(100, dtype=bool)))


def test_erle_of_int16_pcm_matches_float() -> None:
    mic = (noise(RATE) * 32768).astype(np.int16)
    out = (mic // 10).astype(np.int16)
    assert mt.erle_db(mic, out, FRAME, None) == pytest.approx(20.0, abs=0.1)


def test_echo_mask_keeps_loud_echo_clear_of_noise() -> None:
    echo = noise(RATE)
    echo[: RATE // 4] = 0.0  # silent: not echo
    echo[RATE // 4 : RATE // 2] *= 1e-3  # 60 dB below the rest: not echo
    room = noise(RATE, seed=1) * 10 ** (-40 / 20)  # 40 dB under the loud echo
    room[3 * RATE // 4 :] *= 10 ** (20 / 20)  # only 20 dB under it here
    mask = mt.echo_active_mask(echo, room, FRAME, min_echo_to_noise_db=30.0)
    assert not mask[:50].any()
    assert mask[50:75].all()
    assert not mask[75:].any()


def test_erle_curve_follows_a_step() -> None:
    mic = noise(RATE)
    out = mic.copy()
    out[RATE // 2 :] *= 0.1  # 20 dB from 0.5 s on
    curve = mt.erle_curve_db(mic, out, FRAME, np.ones(100, dtype=bool), window_frames=5)
    assert curve[:50] == pytest.approx(np.zeros(50), abs=1e-9)
    assert curve[54:] == pytest.approx(np.full(46, 20.0))
    assert 0.0 < curve[52] < 20.0  # inside the window the step is blended


def test_erle_curve_is_undefined_where_no_frame_counts() -> None:
    mic = noise(RATE)
    mask = np.ones(100, dtype=bool)
    mask[20:40] = False
    curve = mt.erle_curve_db(mic, mic, FRAME, mask, window_frames=5)
    assert np.isnan(curve[24:40]).all()
    assert np.isfinite(curve[:20]).all() and np.isfinite(curve[40:]).all()


# --- time to a threshold ---------------------------------------------------------------


def ramp_curve(seconds: float, top_db: float, frame_s: float = 0.01) -> np.ndarray:
    """0 dB rising linearly to ``top_db`` over ``seconds``, then flat for 2 s."""
    rise = np.linspace(0.0, top_db, round(seconds / frame_s), endpoint=False)
    return np.concatenate((rise, np.full(round(2.0 / frame_s), top_db)))


def test_time_to_threshold_on_a_ramp() -> None:
    curve = ramp_curve(1.0, 40.0)  # crosses 20 dB at 0.5 s
    assert mt.time_to_threshold_s(curve, 0.01, 0, 20.0) == pytest.approx(0.5)
    assert mt.time_to_threshold_s(curve, 0.01, 10, 20.0) == pytest.approx(0.4)


def test_time_to_threshold_ignores_an_early_spike() -> None:
    curve = ramp_curve(2.0, 40.0)  # crosses 20 dB at 1.0 s
    curve[20] = 35.0
    assert mt.time_to_threshold_s(curve, 0.01, 0, 20.0) == pytest.approx(1.0)


def test_time_to_threshold_tolerates_one_dip_and_gaps() -> None:
    curve = ramp_curve(1.0, 40.0)
    curve[60] = 5.0  # one bad frame after reaching the threshold
    curve[70:90] = np.nan  # a pause in the far-end speech
    assert mt.time_to_threshold_s(curve, 0.01, 0, 20.0) == pytest.approx(0.5)


def test_time_to_threshold_never_reached() -> None:
    curve = ramp_curve(1.0, 15.0)
    assert mt.time_to_threshold_s(curve, 0.01, 0, 20.0) is None
    assert mt.time_to_threshold_s(ramp_curve(1.0, 40.0), 0.01, 0, 20.0, end_index=40) is None


# --- SI-SDR, latency, level --------------------------------------------------------------


def test_si_sdr_ignores_gain_and_sign() -> None:
    s = noise(RATE)
    assert mt.si_sdr_db(s, 0.3 * s) > 100.0
    assert mt.si_sdr_db(s, -2.0 * s) > 100.0


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 25.0])
def test_si_sdr_of_a_noisy_scaled_copy(snr_db: float) -> None:
    s = noise(RATE)
    n = noise(RATE, seed=7)
    n -= (n @ s) / (s @ s) * s  # orthogonal to s: all of it is distortion
    n *= np.sqrt((0.5 * s) @ (0.5 * s) / (n @ n)) * 10 ** (-snr_db / 20)
    assert mt.si_sdr_db(s, 0.5 * s + n) == pytest.approx(snr_db, abs=1e-6)


def test_si_sdr_rejects_silence_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="silent"):
        mt.si_sdr_db(np.zeros(10), np.ones(10))
    with pytest.raises(ValueError, match="shapes"):
        mt.si_sdr_db(np.ones(10), np.ones(11))


def test_latency_is_found_and_undone() -> None:
    s = noise(RATE)
    late = np.concatenate((np.zeros(37), s[:-37]))
    assert mt.best_lag(s, late, 200) == 37
    score, lag = mt.aligned_si_sdr_db(s, late, 200)
    assert lag == 37 and score > 100.0
    assert mt.si_sdr_db(s, late) < 0.0  # unaligned, the same copy scores badly


def test_level_difference() -> None:
    s = noise(RATE)
    assert mt.level_difference_db(s, s) == pytest.approx(0.0)
    assert mt.level_difference_db(s, 0.5 * s) == pytest.approx(-6.0206, abs=1e-3)


def test_active_level_ignores_pauses() -> None:
    t = np.arange(RATE) / RATE
    tone = 0.1 * np.sin(2 * np.pi * 440 * t)
    with_pause = np.concatenate((tone, np.zeros(RATE)))
    expected = 20 * np.log10(0.1 / np.sqrt(2))
    assert mt.active_level_dbfs(with_pause, FRAME) == pytest.approx(expected, abs=0.01)


def test_cpu_accounting() -> None:
    assert mt.cpu_per_audio_second(0.5, 10.0) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        mt.cpu_per_audio_second(1.0, 0.0)
    with mt.cpu_timer() as timer:
        sum(range(1000))
    assert isinstance(timer.seconds, float) and timer.seconds >= 0.0


def test_pesq_of_a_clean_copy_is_high() -> None:
    pytest.importorskip("pesq")
    speech = sc.synthetic_utterance(RATE, 3.0, 150.0, np.random.default_rng(0)) * 0.1
    score = mt.pesq_wb(speech, speech, RATE)
    assert score is not None and score > 4.0


# --- targets ------------------------------------------------------------------------------


def test_targets_judge_their_direction() -> None:
    erle = aec_bench.Target("ERLE", "near-40ms", "erle_db", 45.0, "db_min")
    assert erle.met(46.0) and not erle.met(44.0)
    assert erle.met(None) is False  # never reached
    level = aec_bench.Target("level", "near-40ms", "near_level_db", 1.0, "abs_max")
    assert level.met(-0.5) and not level.met(-1.5)
    time = aec_bench.Target("t20", "near-40ms", "t20_s", 0.5, "s_max")
    assert time.met(0.4) and not time.met(0.6) and time.met("n/a") is None
    assert aec_bench.relative(time, 0.4, 0.2) == "2.00x"
    assert aec_bench.relative(erle, 46.0, 31.3) == "+14.7 dB"


def test_plan_runs_a_subset_at_48k_and_fewer_scenes_when_quick() -> None:
    full = sc.plan(quick=False, rates=None)
    assert {r for _, r in full} == {16000, 48000}
    assert {s.name for s, r in full if r == 16000} == {s.name for s in sc.CATALOG}
    quick = sc.plan(quick=True, rates=None)
    assert len(quick) < len(full) and {r for _, r in quick} == {16000}
    assert {r for _, r in sc.plan(quick=False, rates=[48000])} == {48000}


# --- smoke: a tiny synthetic scene through the harness ------------------------------------

TINY = sc.Timeline(
    lead_s=0.2,
    far_a_s=1.5,
    far_b_s=1.0,
    double_talk_s=1.0,
    gap_s=0.2,
    near_only_s=0.8,
    steady_s=0.8,
)


class PassThrough:
    """Stand-in for the "none" backend."""

    name = "none"
    rate_hz = RATE
    frame_frames = FRAME

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        return mic.copy()

    def reset(self) -> None:
        pass


class Oracle(PassThrough):
    """Subtracts the scene's true echo, leaving ``residual_db`` of it; with ``ramp_s``
    the residual falls from 0 dB to ``residual_db`` over that time after the far end
    starts and again after the echo path changes."""

    name = "oracle"

    def __init__(self, scene: sc.Scene, residual_db: float, ramp_s: float = 0.0) -> None:
        self.scene = scene
        self.residual_db = residual_db
        self.ramp_s = ramp_s
        self.pos = 0

    def _residual(self, sample: int) -> float:
        m = self.scene.marks
        since = sample - (m["change"] if sample >= m["change"] else m["far_start"])
        progress = 1.0 if self.ramp_s == 0 else min(max(since / RATE / self.ramp_s, 0.0), 1.0)
        return float(10 ** (self.residual_db * progress / 20))

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        echo = self.scene.echo[self.pos : self.pos + mic.size]
        left = (1.0 - self._residual(self.pos)) * echo
        self.pos += mic.size
        return sc.to_pcm(mic / 32768.0 - left)


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> sc.Scene:
    cache = tmp_path_factory.mktemp("bench")
    return sc.build_scene(
        sc.spec_named("near-40ms"), RATE, TINY, cache, use_espeak=False, real_room=False
    )


def test_tiny_scene_has_its_parts_where_the_timeline_says(tiny_scene: sc.Scene) -> None:
    s = tiny_scene
    m = s.marks
    assert s.mic.dtype == np.int16 and s.reference.dtype == np.int16
    assert s.mic.shape == s.reference.shape == (m["end"],) == (round(TINY.total_s * RATE),)
    assert not s.reference[: m["far_start"]].any() and not s.reference[m["far_stop"] :].any()
    assert not s.near[: m["double_start"]].any()
    assert s.near[m["near_only_start"] :].any()
    far_a = s.echo[m["far_start"] : m["change"]]
    assert mt.active_level_dbfs(far_a, FRAME) == pytest.approx(s.spec.echo_level_dbfs, abs=0.1)
    echo_dt = mt.active_level_dbfs(s.echo[m["double_start"] : m["far_stop"]], FRAME)
    near_dt = mt.active_level_dbfs(s.near[m["double_start"] : m["far_stop"]], FRAME)
    assert echo_dt - near_dt == pytest.approx(sc.DOUBLE_TALK_BELOW_ECHO_DB, abs=0.1)
    assert any("synthetic" in n for n in s.notes)


def test_tiny_scene_comes_back_from_the_cache(tmp_path: Path) -> None:
    spec = sc.spec_named("near-40ms")
    first = sc.build_scene(spec, RATE, TINY, tmp_path, use_espeak=False, real_room=False)
    again = sc.build_scene(spec, RATE, TINY, tmp_path, use_espeak=False, real_room=False)
    np.testing.assert_array_equal(first.mic, again.mic)
    assert first.marks == again.marks and first.notes == again.notes
    assert len(list((tmp_path / "scenes").glob("*.npz"))) == 1


def test_pass_through_scores_no_cancellation(tiny_scene: sc.Scene) -> None:
    out, cpu_s = aec_bench.run_canceller(PassThrough(), tiny_scene)
    m = aec_bench.measure(tiny_scene, out, cpu_s)
    assert m["erle_db"] == pytest.approx(0.0, abs=0.01)
    assert m["t20_s"] is None and m["reconverge_s"] is None
    assert m["dt_si_sdr_db"] == pytest.approx(-10.0, abs=1.5)  # the user 10 dB under the echo
    assert m["near_level_db"] == pytest.approx(0.0, abs=0.01)
    assert m["latency_ms"] == 0.0


def test_oracle_scores_its_known_cancellation(tiny_scene: sc.Scene) -> None:
    out, cpu_s = aec_bench.run_canceller(Oracle(tiny_scene, -30.0), tiny_scene)
    m = aec_bench.measure(tiny_scene, out, cpu_s)
    assert aec_bench.ceiling_db(tiny_scene) > 50.0
    assert m["erle_db"] == pytest.approx(30.0, abs=0.3)
    assert m["t20_s"] == 0.0 and m["reconverge_s"] == 0.0
    assert m["dt_si_sdr_db"] > 19.0  # 30 dB below the echo, 20 dB below the user
    assert m["near_level_db"] == pytest.approx(0.0, abs=0.01)


def test_convergence_times_follow_a_ramping_oracle(tiny_scene: sc.Scene) -> None:
    # The residual reaches -20 dB halfway through a 0.6 s ramp, 0.3 s after it starts;
    # the clock starts at the echo's arrival (40 ms in) and the 50 ms window lags.
    out, cpu_s = aec_bench.run_canceller(Oracle(tiny_scene, -40.0, ramp_s=0.6), tiny_scene)
    m = aec_bench.measure(tiny_scene, out, cpu_s)
    assert m["t20_s"] == pytest.approx(0.3, abs=0.06)
    assert m["reconverge_s"] == pytest.approx(0.3, abs=0.06)


class Broken(PassThrough):
    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        raise RuntimeError("diverged")


def test_one_broken_backend_does_not_stop_the_others(tiny_scene: sc.Scene) -> None:
    backends = [
        aec_bench.Backend("ours", lambda rate: Broken()),
        aec_bench.Backend("speex", None, "not installed"),
        aec_bench.Backend("none", lambda rate: PassThrough()),
    ]
    rows, outs = aec_bench.run_scene(tiny_scene, backends, repeats=2)
    by_label = {r["backend"]: r for r in rows}
    assert set(by_label) == {"ours", "none"} and set(outs) == {"none"}
    assert "diverged" in by_label["ours"]["error"]
    assert by_label["none"]["metrics"]["erle_db"] == pytest.approx(0.0, abs=0.01)


def test_target_table_reads_ours_and_the_anchors() -> None:
    def row(backend: str, erle: float) -> dict[str, object]:
        return {
            "scene": "near-40ms",
            "rate_hz": 16000,
            "backend": backend,
            "metrics": {"erle_db": erle},
        }

    results = [row("ours", 47.0), row("webrtc", 46.6), row("speex", 22.6)]
    header, rows, data = aec_bench.summary(results, ["ours", "webrtc", "speex"], {"speex+rs"})
    assert header[:4] == ["target", "need", "ours", "webrtc"]
    first = dict(zip(header, rows[0], strict=True))
    assert first["ours"] == "47.0" and first["vs webrtc"] == "+0.4 dB" and first["met"] == "yes"
    assert data[0]["met"] is True
    assert data[1]["ours"] == "not run" and data[1]["met"] is None  # near-120ms was not run
