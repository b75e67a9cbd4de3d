"""Ring buffers of recent samples, one per named series, for sparklines and short trends.

Owns ``History``: a ``deque(maxlen=...)`` per series sized for the last ``seconds`` at the sample
rate, appended once per tick by the bus. Which series exist is the bus's choice; drawing is the UI's.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping

HISTORY_S = 600.0
"""How far back the series reach by default: the dashboard's graphs span 10 minutes."""


class History:
    """Named series of floats; ``None`` values are kept (a gap), so series stay aligned in time."""

    def __init__(self, seconds: float = HISTORY_S, rate_hz: float = 1.0) -> None:
        if seconds <= 0 or rate_hz <= 0:
            raise ValueError("seconds and rate_hz must be positive")
        self.seconds = seconds
        self.rate_hz = rate_hz
        self.maxlen = max(1, round(seconds * rate_hz))
        self._series: dict[str, deque[float | None]] = {}

    def append(self, name: str, value: float | None) -> None:
        """Add one sample to ``name`` (created on first use), dropping the oldest when full."""
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = deque(maxlen=self.maxlen)
        series.append(value)

    def extend(self, values: Mapping[str, float | None]) -> None:
        """Append one sample to each series in ``values``."""
        for name, value in values.items():
            self.append(name, value)

    def clear(self, names: Iterable[str]) -> None:
        """Empty the series ``names`` (a new server run: what they held was the last run's); a
        graph of one then starts blank, its new samples ending at now as the others' do."""
        for name in names:
            series = self._series.get(name)
            if series is not None:
                series.clear()

    def tail(self, name: str, n: int | None = None) -> list[float | None]:
        """The last ``n`` samples of ``name`` (all if ``n`` is None), oldest first; [] if unknown."""
        series = self._series.get(name)
        if series is None or n == 0:
            return []
        if n is None or n >= len(series):
            return list(series)
        return list(itertools.islice(series, len(series) - n, None))

    def last(self, name: str) -> float | None:
        """The newest sample of ``name``, or ``None``."""
        series = self._series.get(name)
        return series[-1] if series else None

    def names(self) -> Iterator[str]:
        return iter(self._series)

    def __contains__(self, name: object) -> bool:
        return name in self._series

    def __len__(self) -> int:
        return len(self._series)
