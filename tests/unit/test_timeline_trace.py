from __future__ import annotations

from pathlib import Path

from device import timeline as tl
from device.trace import Trace, read_trace


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_turn_latencies_from_marks() -> None:
    clock = FakeClock()
    timeline = tl.Timeline(clock)
    for at, name in [
        (101.0, tl.LOCAL_SPEECH_START),
        (103.0, tl.LOCAL_SPEECH_END),
        (103.5, tl.SPEECH_STOPPED),
        (103.6, tl.RESPONSE_CREATED),
        (103.9, tl.FIRST_AUDIO_DELTA),
        (103.93, tl.FIRST_DAC_SAMPLE),
        (106.0, tl.PLAYBACK_FINISHED),
    ]:
        timeline.mark(name, at_s=at)
    (turn,) = timeline.turns()
    assert round(turn.speech_end_to_server_stop_ms or 0) == 500
    assert round(turn.server_stop_to_first_delta_ms or 0) == 400
    assert round(turn.first_delta_to_dac_ms or 0) == 30
    assert round(turn.speech_end_to_dac_ms or 0) == 930
    assert round(turn.reply_played_ms or 0) == 2070
    text = timeline.render()
    assert "turn 1:" in text and "930 ms" in text


def test_turn_without_audio_shows_gaps() -> None:
    timeline = tl.Timeline(FakeClock())
    timeline.mark(tl.RESPONSE_CREATED, at_s=101.0)
    (turn,) = timeline.turns()
    assert turn.first_delta_to_dac_ms is None
    assert " -" in timeline.render()


def test_trace_lines_are_json_with_direction_time_event(tmp_path: Path) -> None:
    clock = FakeClock()
    trace = Trace(tmp_path / "t.jsonl", clock)
    trace.record("sent", {"type": "session.update"})
    clock.now = 100.5
    trace.record_frame("recv", '{"type": "session.updated"}')
    trace.record_frame("recv", "not json")
    trace.record_frame("recv", b"\x00\x01")
    trace.close()
    lines = read_trace(tmp_path / "t.jsonl")
    assert [line["dir"] for line in lines] == ["sent", "recv", "recv", "recv"]
    assert lines[1] == {"dir": "recv", "t": 100.5, "event": {"type": "session.updated"}}
    assert lines[2]["event"] == {"raw": "not json"}
    assert lines[3]["event"] == {"binary_bytes": 2}
