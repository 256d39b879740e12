"""Checking a request's ``Authorization`` header against a :class:`~laios.execution.web.WebConfig`.

- Basic: the password is checked against the user's bcrypt hash. A scrape every few seconds
  must not cost a bcrypt hash (~50 ms at cost 10) each time, so results are cached, as
  exporter-toolkit does: keyed by an HMAC (with a key of this process) of user, hash and
  password, so the cache holds no password. Passwords that passed and passwords that failed
  are remembered apart, so a flood of wrong passwords cannot push the right one out. Hashes run
  one at a time (they are CPU work), and at most :data:`MAX_PENDING_CHECKS` are running or
  waiting: a check beyond that is answered "busy" at once rather than queued, so a flood holds
  no more than that many threads. An unknown user is checked all the same, against the
  configured hash of the highest bcrypt cost (the time of a check doubles with each step of
  cost), so the time taken does not tell which users exist when all hashes share one cost
  (``WebConfig`` warns when they do not).
- Bearer: the token's SHA-256 is compared with every accepted token's in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["CACHE_SIZE", "MAX_PENDING_CHECKS", "Authenticator", "Verdict"]

#: Passwords that passed remembered (32 bytes each), and as many that failed, apart.
CACHE_SIZE = 256
#: Most bcrypt checks running (one at a time) or waiting to run; more are answered "busy".
MAX_PENDING_CHECKS = 4
#: What a request's credentials get: in, refused (``401``), or no check could start (``503``).
Verdict = Literal["allowed", "refused", "busy"]
#: bcrypt looks at 72 bytes at most; a longer password is refused rather than cut.
_MAX_PASSWORD_BYTES = 72
_REALM = 'realm="laios"'


def _cost(hashed: bytes) -> int:
    """The cost of a bcrypt hash (``$2b$10$...``: 10); 0 when it cannot be read."""
    cost = hashed[4:6]
    return int(cost) if cost.isdigit() else 0


class Authenticator:
    """Decides whether a request's ``Authorization`` header lets it in.

    Args:
        basic_auth_users: User name to bcrypt hash.
        bearer_tokens: Accepted bearer tokens.
    """

    def __init__(self, basic_auth_users: Mapping[str, str], bearer_tokens: Sequence[str]) -> None:
        self._users = {user: hashed.encode("ascii") for user, hashed in basic_auth_users.items()}
        # What an unknown user is checked against: a hash of the users' own cost (the highest,
        # when they differ), so that a name nobody has costs as long as a known one. The check
        # of an unknown user never lets it in, whatever the password.
        self._unknown_user_hash = max(self._users.values(), key=_cost, default=b"")
        self._tokens = tuple(hashlib.sha256(token.encode()).digest() for token in bearer_tokens)
        # bcrypt is an optional dependency; WebConfig checked it is there when users are.
        self._bcrypt: Any = importlib.import_module("bcrypt") if self._users else None
        self._cache_key = secrets.token_bytes(32)
        self._passed: OrderedDict[bytes, None] = OrderedDict()
        self._failed: OrderedDict[bytes, None] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._pending = 0  # bcrypt checks running or waiting for _hash_lock
        self._hash_lock = threading.Lock()
        self.bcrypt_checks = 0
        challenges = []
        if self._users:
            challenges.append(("WWW-Authenticate", f'Basic {_REALM}, charset="UTF-8"'))
        if self._tokens:
            challenges.append(("WWW-Authenticate", f"Bearer {_REALM}"))
        self.challenges: tuple[tuple[str, str], ...] = tuple(challenges)

    @property
    def required(self) -> bool:
        """Whether requests must carry credentials at all."""
        return bool(self._users or self._tokens)

    def allows(self, authorization: str) -> bool:
        """Whether the ``Authorization`` header (``""`` when absent) lets the request in."""
        return self.check(authorization) == "allowed"

    def check(self, authorization: str) -> Verdict:
        """What the ``Authorization`` header (``""`` when absent) gets: ``"busy"`` when its
        password needs a bcrypt check and :data:`MAX_PENDING_CHECKS` are running or waiting."""
        if not self.required:
            return "allowed"
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "basic" and self._users:
            return self._basic(credentials)
        if scheme == "bearer" and self._tokens and self._bearer(credentials):
            return "allowed"
        return "refused"

    def _bearer(self, credentials: str) -> bool:
        presented = hashlib.sha256(credentials.encode("utf-8", "replace")).digest()
        matched = False
        for token in self._tokens:  # every one, so the time does not tell which matched
            matched |= hmac.compare_digest(presented, token)
        return matched

    def _basic(self, credentials: str) -> Verdict:
        try:
            decoded = base64.b64decode(credentials.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            return "refused"
        user_bytes, colon, password = decoded.partition(b":")
        if not colon:
            return "refused"
        try:
            user = user_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return "refused"
        hashed = self._users.get(user)
        known = hashed is not None
        if hashed is None:
            hashed = self._unknown_user_hash
        key = hmac.new(self._cache_key, digestmod=hashlib.sha256)
        for part in (user_bytes, hashed, password):
            key.update(len(part).to_bytes(4, "big") + part)
        digest = key.digest()
        with self._cache_lock:
            remembered = self._remembered(digest)
            if remembered is not None:
                return remembered
            if self._pending >= MAX_PENDING_CHECKS:
                return "busy"
            self._pending += 1
        try:
            with self._hash_lock:
                with self._cache_lock:  # checked by the thread that held the lock just now?
                    remembered = self._remembered(digest)
                if remembered is not None:
                    return remembered
                self.bcrypt_checks += 1
                allowed = self._checkpw(password, hashed) and known
        finally:
            with self._cache_lock:
                self._pending -= 1
        with self._cache_lock:
            cache = self._passed if allowed else self._failed
            cache[digest] = None
            if len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        return "allowed" if allowed else "refused"

    def _remembered(self, digest: bytes) -> Verdict | None:
        """The cached outcome for ``digest``, ``None`` when none (call with the cache lock)."""
        if digest in self._passed:
            self._passed.move_to_end(digest)
            return "allowed"
        if digest in self._failed:
            self._failed.move_to_end(digest)
            return "refused"
        return None

    def _checkpw(self, password: bytes, hashed: bytes) -> bool:
        if not password or len(password) > _MAX_PASSWORD_BYTES:
            return False
        try:
            return bool(self._bcrypt.checkpw(password, hashed))
        except ValueError:  # a hash bcrypt cannot read (the format was checked at load)
            return False
