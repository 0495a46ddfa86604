from __future__ import annotations

import pytest

from app.kit.crypto import SecretBox, SecretDecryptionError

OLD = "old-key-0123456789abcdefghijklmnopqrstuv"
NEW = "new-key-zyxwvutsrqponmlkjihgfedcba987654"


def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    box = SecretBox([NEW])
    ciphertext = box.encrypt("Customer-P@ss")
    assert "Customer-P@ss" not in ciphertext
    assert box.encrypt("Customer-P@ss") != ciphertext  # random IV per encryption
    assert box.decrypt(ciphertext) == "Customer-P@ss"


def test_rotation_keeps_old_secrets_readable() -> None:
    stored = SecretBox([OLD]).encrypt("pw")
    assert SecretBox([NEW, OLD]).decrypt(stored) == "pw"


def test_wrong_key_or_tampering_is_refused() -> None:
    stored = SecretBox([OLD]).encrypt("pw")
    with pytest.raises(SecretDecryptionError):
        SecretBox([NEW]).decrypt(stored)
    tampered = stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretDecryptionError):
        SecretBox([OLD]).decrypt(tampered)
