"""Encryption of secrets at rest (customers' OS passwords while a step needs them)."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_HKDF_INFO = b"dcibridge secret box v1"


class SecretDecryptionError(Exception):
    """A stored secret cannot be read with any configured key."""


def _fernet_for(secret_key: str) -> Fernet:
    # Operators give a passphrase-like key; HKDF turns it into the 32 bytes Fernet needs.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    """Authenticated encryption with the current key; older keys still decrypt.

    The first key encrypts; every key is tried when decrypting, so the key can be
    rotated without losing secrets that are already stored.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._fernet = MultiFernet([_fernet_for(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretDecryptionError("stored secret does not decrypt with any key") from None
