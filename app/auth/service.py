"""API keys: issued once, stored only as a hash, checked on every request."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.exceptions import ApiClientExists, ApiClientNotFound, InvalidApiKey
from app.auth.models import ApiClient, Caller
from app.auth.repository import ApiClientRepository
from app.auth.scopes import Scope
from app.kit.crypto import SecretBox

KEY_PREFIX = "dcb_"
_DISPLAY_PREFIX_LENGTH = 12


def hash_key(raw_key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast unsalted hash is enough: there is
    # nothing to brute-force, and lookups by hash stay a single indexed read.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    client: ApiClient
    raw_key: str


async def create_client(session: AsyncSession, *, name: str, scopes: Iterable[Scope]) -> IssuedKey:
    repository = ApiClientRepository(session)
    if await repository.get_by_name(name) is not None:
        raise ApiClientExists(f"An API client named {name!r} already exists.")
    raw_key = generate_key()
    client = ApiClient(
        name=name,
        key_prefix=raw_key[:_DISPLAY_PREFIX_LENGTH],
        key_hash=hash_key(raw_key),
        scopes=sorted({str(scope) for scope in scopes}),
        enabled=True,
    )
    await repository.add(client)
    return IssuedKey(client=client, raw_key=raw_key)


async def authenticate(session: AsyncSession, raw_key: str) -> Caller:
    caller = await ApiClientRepository(session).enabled_caller(hash_key(raw_key))
    if caller is None:
        raise InvalidApiKey()
    return caller


async def list_clients(session: AsyncSession) -> Sequence[ApiClient]:
    return await ApiClientRepository(session).list_all()


async def revoke_client(session: AsyncSession, *, name: str) -> ApiClient:
    client = await ApiClientRepository(session).get_by_name(name)
    if client is None:
        raise ApiClientNotFound(name)
    client.enabled = False
    await session.flush()
    return client


def generate_callback_secret() -> str:
    # Standard Webhooks secrets: "whsec_" + base64 of 24-64 random bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    client: ApiClient
    new_secret: str | None


async def configure_callbacks(
    session: AsyncSession,
    *,
    name: str,
    url: str | None,
    secrets_box: SecretBox,
    rotate_secret: bool = False,
) -> CallbackConfig:
    """Set (or with ``url=None`` clear) where a client's callbacks go.

    A signing secret is made the first time, or again on rotation, and returned
    once; only its ciphertext is stored.
    """
    client = await ApiClientRepository(session).get_by_name(name)
    if client is None:
        raise ApiClientNotFound(name)
    client.callback_url = url
    new_secret = None
    if url is not None and (rotate_secret or client.callback_secret_ciphertext is None):
        new_secret = generate_callback_secret()
        client.callback_secret_ciphertext = secrets_box.encrypt(new_secret)
    await session.flush()
    return CallbackConfig(client=client, new_secret=new_secret)
