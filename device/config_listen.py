"""[listen]: when the microphone may stream at all, and when the user may cut the
device short by voice.

Declared here rather than in ``device.config`` to keep that module small; it is
one section of ``Config`` like the others, checked by the same rules.

Nothing leaves the device before an activation: in ``wake_word`` mode the wake
word (or the talk button) opens a turn, in ``push_to_talk`` mode holding the talk
button does, and ``always`` streams whatever the voice gate passes (for private
rooms). ``[turn] mode = "push_to_talk"`` and ``mode = "push_to_talk"`` here go
together: the button that opens the turn is the one that ends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from device.config_rules import (
    _abs_path,
    _boolean,
    _choice,
    _float_range,
    _int_range,
    _key,
    _string,
)

LISTEN_MODES = ("wake_word", "push_to_talk", "always")
WAKE_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
"""The models the pymicro-wakeword wheel ships (its ``Model`` enum)."""


@dataclass(frozen=True, slots=True)
class ListenConfig:
    """[listen]: activation (wake word, button, always), follow-up and barge-in."""

    mode: str = _key("wake_word", _choice(_string, "listen mode", LISTEN_MODES))
    """"wake_word": a wake word or the talk button opens a turn; "push_to_talk": the
    microphone streams while the talk button is held; "always": whenever the voice
    gate hears speech (a private room)."""
    wake_word: str = _key("okay_nabu", _choice(_string, "wake word", WAKE_WORDS))
    """One of the wake-word models shipped with pymicro-wakeword."""
    # RUF009 cannot see that _key returns a dataclasses.field; Path is immutable anyway.
    wake_word_model: Path | None = _key(None, _abs_path(optional=True))  # noqa: RUF009
    """A microWakeWord model of one's own: the path of its JSON manifest, with the
    .tflite file it names beside it. Set, it replaces ``wake_word``."""
    refractory_s: float = _key(2.0, _float_range(0.5, 10))
    """After the wake word fired, it cannot fire again for this long: one utterance
    triggers once."""
    listen_timeout_s: float = _key(8.0, _float_range(1, 60))
    """An activation (wake word or button) with no speech for this long ends."""
    follow_up_s: float = _key(5.0, _float_range(0, 60))
    """After a reply, the microphone keeps listening this long without the wake word;
    0 turns the follow-up off."""
    barge_in: bool = _key(True, _boolean)
    """The user can interrupt the device's reply by speaking over it."""
    barge_in_min_speech_ms: int = _key(30, _int_range(30, 1000, 10))
    """Speech over the reply needed before playback stops (within twice as long), so
    a click does not; every such frame must also pass the echo and noise guards."""
    barge_in_echo_margin_db: float = _key(20.0, _float_range(0, 60))
    """While the device plays, a frame counts as the user's speech only when what the
    echo canceller left is no more than this far below the echo it removed; the
    device's own voice, cancelled 30 dB or more, never passes."""


def listen_problem(listen: ListenConfig, turn_mode: str) -> tuple[str, str] | None:
    """(key, reason) when [listen] and [turn] disagree about push-to-talk, else None."""
    if listen.mode == "push_to_talk" and turn_mode != "push_to_talk":
        reason = (
            f'"push_to_talk" needs turn.mode = "push_to_talk" too (it is "{turn_mode}"): '
            "letting go of the button ends the turn; set both, or another listen mode"
        )
        return "listen.mode", reason
    if turn_mode == "push_to_talk" and listen.mode != "push_to_talk":
        reason = (
            f'"push_to_talk" needs listen.mode = "push_to_talk" too (it is "{listen.mode}"): '
            "the button that ends a turn must also open it; set both"
        )
        return "turn.mode", reason
    return None


def describe_listen(listen: ListenConfig) -> str:
    """One line for ``edgevoice config check``."""
    follow = f"follow-up {listen.follow_up_s:g} s" if listen.follow_up_s else "no follow-up"
    barge = (
        f"barge-in after {listen.barge_in_min_speech_ms} ms"
        if listen.barge_in
        else "no barge-in by voice"
    )
    if listen.mode == "wake_word":
        word = str(listen.wake_word_model) if listen.wake_word_model else listen.wake_word
        return f"wake word {word}, {follow}, {barge}"
    return f"{listen.mode.replace('_', '-')}, {barge}"
