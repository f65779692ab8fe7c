from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.crypto import Crypto, generate_key
from ml_connector.errors import ConfigError


def test_round_trip_and_no_plaintext() -> None:
    crypto = Crypto([generate_key()])
    token = crypto.encrypt("GB123456789")
    assert "GB123456789" not in token
    assert crypto.decrypt(token) == "GB123456789"


@given(st.text())
def test_any_text_round_trips(value: str) -> None:
    crypto = Crypto(["8Jk1cF0Qm3m5dB6aN2bq0Y7xq4ZrB9uS7dT3vW1xY2Q="])
    assert crypto.decrypt(crypto.encrypt(value)) == value


def test_rotation_keeps_old_values_readable_and_blind_index_stable() -> None:
    old = generate_key()
    new = generate_key()
    before = Crypto([old])
    secret = before.encrypt("refresh-token")
    after = Crypto([new, old])
    assert after.decrypt(secret) == "refresh-token"
    rotated = after.rotate(secret)
    assert Crypto([new]).decrypt(rotated) == "refresh-token"
    assert before.blind_index("GB 123") == after.blind_index("gb123")


def test_removed_key_is_a_clear_error() -> None:
    secret = Crypto([generate_key()]).encrypt("x")
    with pytest.raises(ConfigError, match="fernet_keys"):
        Crypto([generate_key()]).decrypt(secret)


def test_bad_key_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="Invalid Fernet key"):
        Crypto(["not-a-key"])
