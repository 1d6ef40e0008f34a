"""Password hashing: argon2id at OWASP's parameters (19 MiB of memory, 2 passes, 1 lane).

Hashes made by older versions (scrypt, `scrypt$N$r$p$salt$digest`) still verify; `needs_rehash`
says so and login stores an argon2id hash in their place.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1 (argon2-cffi's other
# defaults: 16-byte salt, 32-byte hash). Lighter than RFC 9106's low-memory profile (64 MiB,
# 4 lanes), which several gunicorn workers on two cores could not afford per login.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
SCRYPT = "scrypt"


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches `stored`. Without a stored hash (an unknown email, an
    account without a password) a dummy hash is checked anyway, so the answer takes as long."""
    if not stored:
        _verify_argon2(password, _dummy_hash())
        return False
    if stored.startswith(SCRYPT + "$"):
        return _verify_scrypt(password, stored)
    return _verify_argon2(password, stored)


def needs_rehash(stored: str) -> bool:
    """A hash of an older scheme or other parameters: replace it after a successful login."""
    return stored.startswith(SCRYPT + "$") or HASHER.check_needs_rehash(stored)


def _verify_argon2(password: str, stored: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        _scheme, n, r, p, salt, digest = stored.split("$")
        candidate = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r),
                                   p=int(p), dklen=32)
        expected = _unb64(digest)
    except ValueError:  # a malformed hash (binascii.Error is a ValueError too)
        return False
    return hmac.compare_digest(candidate, expected)


@functools.cache
def _dummy_hash() -> str:
    return HASHER.hash(secrets.token_urlsafe(16))


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())
