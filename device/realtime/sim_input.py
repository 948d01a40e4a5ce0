"""The simulator's input audio buffer, placed on the session's input timeline.

Positions are sample counts of all audio appended since the session began (the
timeline ``audio_start_ms``/``audio_end_ms`` refer to), so a commit, a clear or a
VAD boundary never needs a clock.
"""

from __future__ import annotations

import numpy as np

SAMPLES_PER_MS = 24
BYTES_PER_SAMPLE = 2


class InputBuffer:
    """Audio appended since the last commit or clear."""

    def __init__(self) -> None:
        self._data = bytearray()
        self.start_sample = 0  # timeline position of the first buffered sample
        self.total_samples = 0  # everything appended this session

    @property
    def start_ms(self) -> int:
        return self.start_sample // SAMPLES_PER_MS

    @property
    def end_ms(self) -> int:
        return self.total_samples // SAMPLES_PER_MS

    @property
    def buffered_ms(self) -> float:
        return len(self._data) / BYTES_PER_SAMPLE / SAMPLES_PER_MS

    def append(self, pcm: bytes) -> np.ndarray[tuple[int], np.dtype[np.int16]]:
        """Add PCM16 bytes; return them as samples for the VAD."""
        self._data += pcm
        self.total_samples += len(pcm) // BYTES_PER_SAMPLE
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16)

    def drop_before(self, at_ms: int) -> None:
        """Forget audio before ``at_ms`` (speech began there, padding included)."""
        cut = min(max(0, at_ms * SAMPLES_PER_MS - self.start_sample), len(self._data) // 2)
        del self._data[: cut * BYTES_PER_SAMPLE]
        self.start_sample += cut

    def take_until(self, at_ms: int) -> bytes:
        """Remove and return the audio before ``at_ms``; the rest stays buffered."""
        cut = min(max(0, at_ms * SAMPLES_PER_MS - self.start_sample), len(self._data) // 2)
        taken = bytes(self._data[: cut * BYTES_PER_SAMPLE])
        del self._data[: cut * BYTES_PER_SAMPLE]
        self.start_sample += cut
        return taken

    def take_all(self) -> bytes:
        taken = bytes(self._data)
        self.clear()
        return taken

    def clear(self) -> None:
        self._data.clear()
        self.start_sample = self.total_samples

    def keep_last(self, keep_ms: int) -> None:
        """Bound memory while no one speaks: only the prefix padding can matter."""
        self.drop_before(self.end_ms - keep_ms)
