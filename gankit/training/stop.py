"""Ctrl-C during training: the first one asks the loop to stop after the step under way (it then checkpoints);
a second one interrupts at once."""

from __future__ import annotations

import signal
from typing import Any


class StopRequest:
    """Turns the first Ctrl-C into a flag checked between steps; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopRequest:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
