"""The server's TLS context, rebuilt when its certificate, key or CA file changes on disk.

Certificates are renewed while services run (cert-manager rewrites a Kubernetes secret, and the
kubelet swaps the mounted files). exporter-toolkit reads its files again for every connection;
here the files are looked at (``stat``) at most once a second, and a new context is built only
when one of them changed. A rewrite caught half-way (a new certificate with the old key) fails
to load: the server keeps the context it has, logs a warning (at most one a minute), and tries
again a second later.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time

from laios.execution._logs import WarningLimiter
from laios.execution.web import TLSServerConfig, WebConfigError

__all__ = ["ReloadingContext"]

_log = logging.getLogger("laios.execution.server")
#: Seconds between two looks at the files.
CHECK_EVERY = 1.0

_Signature = tuple[tuple[int, int, int], ...]


class ReloadingContext:
    """Hands out the current :class:`ssl.SSLContext` of a :class:`TLSServerConfig`.

    Args:
        config: The TLS settings; its files are read now (so a bad file fails here).
        check_every: Seconds between two looks at the files.
    """

    def __init__(self, config: TLSServerConfig, check_every: float = CHECK_EVERY) -> None:
        self._config = config
        self._check_every = check_every
        self._paths = [str(config.cert_file), str(config.key_file)]
        if config.client_ca_file is not None:
            self._paths.append(str(config.client_ca_file))
        self._lock = threading.Lock()
        self._warnings = WarningLimiter(60.0)
        self._signature = self._stat()
        self._context = config.ssl_context()
        self._checked = time.monotonic()
        self.reloads = 0

    def current(self) -> ssl.SSLContext:
        """The context for a new connection: rebuilt first if a file changed since last time."""
        now = time.monotonic()
        if now - self._checked < self._check_every:
            return self._context
        with self._lock:
            if now - self._checked < self._check_every:
                return self._context
            self._checked = now
            signature = self._stat()
            if signature == self._signature:
                return self._context
            try:
                context = self._config.ssl_context()
            except WebConfigError as exc:
                if self._warnings.should_log("reload") is not None:
                    _log.warning(
                        "metrics endpoint: the TLS files changed but cannot be used yet (%s); "
                        "serving with the previous certificate",
                        exc,
                    )
                return self._context
            self._context, self._signature = context, signature
            self.reloads += 1
            _log.info("metrics endpoint: TLS certificate reloaded from %s", self._paths[0])
            return context

    def _stat(self) -> _Signature:
        signature = []
        for path in self._paths:
            try:
                found = os.stat(path)
            except OSError:
                signature.append((-1, -1, -1))
                continue
            signature.append((found.st_mtime_ns, found.st_size, found.st_ino))
        return tuple(signature)
