"""The DAC-side buffer: reply audio waiting to be played, and what was played.

The event loop pushes decoded reply audio; the PortAudio callback thread reads a
block per callback. Barge-in depends on the count kept here: to truncate a reply
the session must tell the server how much of the item the user actually heard
(``audio_end_ms``), and that is the number of its samples that left this buffer
for the DAC, not the number received. So every read is charged to the item whose
samples it took, and the buffer's own read count serves as the DAC sample clock
that playback events are stamped with.

Short sounds of the device's own (earcons) are mixed over the reply with
``play_over``: they reach the DAC, and so the echo reference, but are charged to
no item, are not cut by a barge-in and do not count as queued reply audio.

One lock guards all state and is held only for short, O(frames) work, so the
audio thread never waits on the event loop for long.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from device.audio.frames import Pcm, check_mono_pcm

PlaybackKind = Literal["started", "finished", "interrupted"]

_LIVE = "live"
MAX_OVERLAY_S = 2.0  # earcons waiting to play; more than this is a burst of presses
_FINISHED = "finished"
_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class PlaybackEvent:
    """Something that happened to an item's audio, stamped on the DAC sample clock.

    ``dac_frame`` counts frames read from the buffer since its creation (padding
    included): for ``started`` the position of the item's first sample, for
    ``finished`` the position just after its last sample, for ``interrupted`` the
    read position when playback was cut.
    """

    item_id: str
    kind: PlaybackKind
    dac_frame: int


def _rms(block: Pcm) -> float:
    if not len(block):
        return 0.0
    return float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))) / 32768.0


class _Item:
    """Accounting for one item's audio."""

    __slots__ = ("ended", "last_dac_frame", "played_frames", "queued_frames", "started", "state")

    def __init__(self) -> None:
        self.queued_frames = 0
        self.played_frames = 0
        self.started = False
        self.ended = False
        self.state = _LIVE
        self.last_dac_frame = 0


class _Segment:
    """One pushed chunk, consumed from ``offset`` on."""

    __slots__ = ("item", "item_id", "offset", "samples")

    def __init__(self, item_id: str, item: _Item, samples: Pcm) -> None:
        self.item_id = item_id
        self.item = item
        self.samples = samples
        self.offset = 0


class _Overlay:
    """One sound mixed over the reply, consumed from ``offset`` on."""

    __slots__ = ("offset", "samples")

    def __init__(self, samples: Pcm) -> None:
        self.samples = samples
        self.offset = 0


class PlaybackBuffer:
    """Queue of reply audio in push order, read by the audio thread.

    Items play in the order their audio was pushed. Audio for an item that was
    interrupted is ignored (late deltas of a cancelled reply must stay silent);
    audio for an item already ended is a caller error. Total queued audio is
    bounded by ``max_queued_s``; what does not fit is dropped and counted.
    Accounting for each item is kept until :meth:`forget` so a truncation can
    still be computed after the audio is gone.
    """

    def __init__(self, rate_hz: int, max_queued_s: float = 300.0) -> None:
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, int) or rate_hz <= 0:
            raise ValueError(f"rate_hz must be a positive integer, got {rate_hz!r}")
        if not math.isfinite(max_queued_s) or max_queued_s <= 0:
            raise ValueError(f"max_queued_s must be positive and finite, got {max_queued_s!r}")
        self._rate_hz = rate_hz
        self._max_queued_frames = max(1, round(max_queued_s * rate_hz))
        self._lock = threading.Lock()
        self._segments: deque[_Segment] = deque()
        self._items: dict[str, _Item] = {}
        self._events: list[PlaybackEvent] = []
        self._queued_frames = 0
        self._dac_frames = 0
        self._dropped_frames = 0
        self._max_overlay_frames = max(1, round(MAX_OVERLAY_S * rate_hz))
        self._overlays: deque[_Overlay] = deque()
        self._overlay_frames = 0
        self._level = 0.0

    @property
    def rate_hz(self) -> int:
        return self._rate_hz

    @property
    def max_queued_frames(self) -> int:
        return self._max_queued_frames

    def push(self, item_id: str, samples: Pcm) -> int:
        """Queue audio of an item; returns the frames accepted.

        Over the bound the excess is dropped and added to ``dropped_frames``.
        Audio for an interrupted item is ignored (0 accepted, not counted as
        dropped). Raises ValueError for an item already ended.
        """
        check_mono_pcm(samples)
        own = samples.copy()  # outside the lock: the audio thread must not wait on it
        n_frames = int(own.shape[0])
        with self._lock:
            item = self._items.get(item_id)
            if item is None:
                item = self._items[item_id] = _Item()
            elif item.state == _INTERRUPTED:
                return 0
            elif item.ended:
                raise ValueError(f"item {item_id!r} was already ended; no audio can follow")
            accepted = min(n_frames, self._max_queued_frames - self._queued_frames)
            self._dropped_frames += n_frames - accepted
            if accepted > 0:
                self._segments.append(_Segment(item_id, item, own[:accepted]))
                item.queued_frames += accepted
                self._queued_frames += accepted
            return accepted

    def end_item(self, item_id: str) -> None:
        """Mark that no more audio will come for the item.

        ``finished`` fires once its last queued frame has been read — at once if
        nothing of it is left queued. Ending an interrupted or finished item does
        nothing.
        """
        with self._lock:
            item = self._items.get(item_id)
            if item is None:
                item = self._items[item_id] = _Item()
            if item.state != _LIVE:
                return
            item.ended = True
            if item.queued_frames == 0:
                self._finish(item_id, item)

    def _finish(self, item_id: str, item: _Item) -> None:
        item.state = _FINISHED
        at = item.last_dac_frame if item.started else self._dac_frames
        self._events.append(PlaybackEvent(item_id, "finished", at))

    def read(self, frames: int) -> Pcm:
        """Return exactly ``frames`` samples for the DAC, zero-padded when the queue
        runs dry, and charge each sample to its item. Safe to call from the audio
        thread: O(frames) under one briefly held lock."""
        if frames < 0:
            raise ValueError(f"frames must be >= 0, got {frames}")
        out = np.zeros(frames, dtype=np.int16)
        with self._lock:
            pos = 0
            segments = self._segments
            while pos < frames and segments:
                seg = segments[0]
                item = seg.item
                take = min(seg.samples.shape[0] - seg.offset, frames - pos)
                if not item.started:
                    item.started = True
                    self._events.append(
                        PlaybackEvent(seg.item_id, "started", self._dac_frames + pos)
                    )
                out[pos : pos + take] = seg.samples[seg.offset : seg.offset + take]
                seg.offset += take
                pos += take
                item.queued_frames -= take
                item.played_frames += take
                item.last_dac_frame = self._dac_frames + pos
                self._queued_frames -= take
                if seg.offset == seg.samples.shape[0]:
                    segments.popleft()
                if item.ended and item.queued_frames == 0:
                    self._finish(seg.item_id, item)
            if self._overlays:
                self._mix_overlays(out)
            self._dac_frames += frames
            self._level = _rms(out)
        return out

    def _mix_overlays(self, out: Pcm) -> None:
        """Add queued overlay sounds, one after another, saturating (lock held)."""
        mixed = out.astype(np.int32)
        pos = 0
        while pos < len(out) and self._overlays:
            sound = self._overlays[0]
            take = min(len(sound.samples) - sound.offset, len(out) - pos)
            mixed[pos : pos + take] += sound.samples[sound.offset : sound.offset + take]
            sound.offset += take
            pos += take
            self._overlay_frames -= take
            if sound.offset == len(sound.samples):
                self._overlays.popleft()
        np.clip(mixed, -32768, 32767, out=mixed)
        out[:] = mixed

    def play_over(self, samples: Pcm) -> bool:
        """Queue a short sound (an earcon) to be mixed over whatever plays.

        It is not reply audio: no item is charged, ``clear`` leaves it alone and
        ``queued_frames`` does not count it. Sounds queue one after another; one
        that would push the queue past ``MAX_OVERLAY_S`` is dropped (False).
        """
        check_mono_pcm(samples)
        own = samples.copy()
        with self._lock:
            if self._overlay_frames + len(own) > self._max_overlay_frames:
                return False
            if len(own):
                self._overlays.append(_Overlay(own))
                self._overlay_frames += len(own)
            return True

    @property
    def overlay_frames(self) -> int:
        """Frames of overlay sounds still to be played."""
        with self._lock:
            return self._overlay_frames

    @property
    def level(self) -> float:
        """RMS of the last block read for the DAC, 0..1 of full scale: what the speaker
        is putting out now (reply and earcons), for the LEDs to follow."""
        with self._lock:
            return self._level

    def clear(self) -> list[tuple[str, float]]:
        """Barge-in: drop everything queued.

        Every item still playing — with audio queued, or not yet ended — is
        interrupted: it gets an ``interrupted`` event, later audio for it is
        ignored, and it is returned with the ms actually played, in the order
        its audio was first pushed. That is the ``audio_end_ms`` to truncate to.
        """
        with self._lock:
            interrupted: list[tuple[str, float]] = []
            for item_id, item in self._items.items():
                if item.state != _LIVE:
                    continue
                item.state = _INTERRUPTED
                item.queued_frames = 0
                self._events.append(PlaybackEvent(item_id, "interrupted", self._dac_frames))
                interrupted.append((item_id, self._ms(item.played_frames)))
            self._segments.clear()
            self._queued_frames = 0
            return interrupted

    def played_frames(self, item_id: str) -> int:
        """Frames of the item read for the DAC so far (0 for an unknown item)."""
        with self._lock:
            item = self._items.get(item_id)
            return item.played_frames if item is not None else 0

    def played_ms(self, item_id: str) -> float:
        """Milliseconds of the item read for the DAC so far (0 for an unknown item)."""
        return self._ms(self.played_frames(item_id))

    def _ms(self, frames: int) -> float:
        return frames * 1000.0 / self._rate_hz

    @property
    def queued_frames(self) -> int:
        with self._lock:
            return self._queued_frames

    @property
    def queued_ms(self) -> float:
        return self._ms(self.queued_frames)

    @property
    def dac_frames(self) -> int:
        """Frames read since creation, padding included: the DAC sample clock."""
        with self._lock:
            return self._dac_frames

    @property
    def dropped_frames(self) -> int:
        """Frames refused because the queue was full."""
        with self._lock:
            return self._dropped_frames

    @property
    def current_item(self) -> str | None:
        """The item whose audio is at the head of the queue, if any."""
        with self._lock:
            return self._segments[0].item_id if self._segments else None

    def take_events(self) -> list[PlaybackEvent]:
        """Drain the events in the order they happened."""
        with self._lock:
            events, self._events = self._events, []
            return events

    def forget(self, item_id: str) -> None:
        """Drop the accounting of a finished or interrupted item so memory stays
        bounded over a long session. Unknown items are ignored; forgetting an item
        still playing is a caller error (ValueError)."""
        with self._lock:
            item = self._items.get(item_id)
            if item is None:
                return
            if item.state == _LIVE:
                raise ValueError(f"item {item_id!r} is still playing; end or clear it first")
            del self._items[item_id]
