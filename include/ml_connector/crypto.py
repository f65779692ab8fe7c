"""Field encryption for tokens and the sensitive columns of mappings.

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``; MultiFernet lets an operator add a new key in front of
the old ones and re-encrypt (``mlc keys rotate``). Encrypted columns cannot be searched, so each one that is looked
up gets a *blind index*: an HMAC-SHA256 of the normalised value under a key derived from the primary key.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ml_connector.errors import ConfigError
from ml_connector.settings import fernet_keys


class Crypto:
    def __init__(self, keys: list[str]):
        if not keys:
            raise ConfigError("At least one Fernet key is needed")
        try:
            self._fernets = [Fernet(k.encode() if isinstance(k, str) else k) for k in keys]
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"Invalid Fernet key ({exc}); a key is 32 url-safe base64-encoded bytes (mlc keys generate)"
            ) from None
        self._multi = MultiFernet(self._fernets)
        # The blind-index key must stay the same across rotations, so it is derived from the *oldest* key.
        self._index_key = hashlib.sha256(b"mlc-blind-index:" + keys[-1].encode()).digest()

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._multi.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "Cannot decrypt a stored value with the configured keys: was a key removed from "
                "[ml_connector] fernet_keys? Put the old key back at the end of the list."
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the primary key (used after adding a new key in front)."""
        return self._multi.rotate(ciphertext.encode()).decode()

    def blind_index(self, value: str | None) -> str | None:
        if value is None:
            return None
        normalised = "".join(value.split()).upper()
        if not normalised:
            return None
        return hmac.new(self._index_key, normalised.encode(), hashlib.sha256).hexdigest()


def generate_key() -> str:
    return Fernet.generate_key().decode()


@lru_cache(maxsize=8)
def _crypto_for(keys: tuple[str, ...]) -> Crypto:
    return Crypto(list(keys))


def get_crypto() -> Crypto:
    """The process-wide Crypto for the configured keys (re-read so tests can change them)."""
    return _crypto_for(tuple(fernet_keys()))
