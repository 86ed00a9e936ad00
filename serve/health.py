"""Is the MLflow store reachable? Probed at most every ``TTL_S`` seconds so ``/health`` stays cheap."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path


class TrackingProbe:
    TTL_S = 15.0

    def __init__(self, uri: str | None):
        self.uri = uri
        self._checked_at = -1e9
        self._state = "not configured"

    def state(self) -> str:
        """``ok``, ``unreachable`` or ``not configured``."""
        if self.uri is None:
            return "not configured"
        if time.monotonic() - self._checked_at > self.TTL_S:
            self._state = "ok" if self._reachable(self.uri) else "unreachable"
            self._checked_at = time.monotonic()
        return self._state

    @staticmethod
    def _reachable(uri: str) -> bool:
        if uri.startswith("sqlite:///"):
            return Path(uri.removeprefix("sqlite:///")).is_file()
        if uri.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False
        if uri.startswith("file:") or "://" not in uri:
            return Path(uri.removeprefix("file://")).exists()
        return True  # other schemes (databricks, ...): reachable until a load says otherwise
