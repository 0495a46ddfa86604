"""Typed async client for the DCImanager 6 calls in the vendor's "Examples of API use"."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from app.config import ConfigurationError, Settings
from app.dci.auth import Credentials, TokenManager, log_in
from app.dci.backoff import BackoffPolicy
from app.dci.exceptions import DCIAuthError, DCIOutcomeUnknown, DCIProtocolError, DCIRequestError
from app.dci.free_servers import FreeServerSearches
from app.dci.models import (
    ConfigurationStock,
    IPAddress,
    Network,
    Operation,
    Page,
    Pool,
    Server,
    TaskRef,
    User,
)
from app.dci.server_reads import ServerReads
from app.dci.session import DCISession
from app.dci.where import Expr, Field, Or
from app.kit.http_transport import AiohttpTransport

ModelT = TypeVar("ModelT", bound=BaseModel)

DCI_API = "/api/dci/v3"
IP_API = "/api/ip/v3"
# What the steps read off a server. A list whose items lack any of these cannot
# stand in for single reads.
_WHOLE_SERVER_FIELDS = frozenset(
    {"id", "state", "operation", "owner_email", "power_status", "switch_connection", "ip"}
)


class DCIClient:
    """One DCImanager instance, reached through one shared ``httpx.AsyncClient``.

    Every method is keyword-only. Reads return models; writes return a
    ``TaskRef`` whose ``task`` (when present) identifies the asynchronous work
    to watch with ``app.dci.completion``.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        credentials: Credentials,
        backoff: BackoffPolicy,
        max_concurrent: int | None = None,
        batch_server_reads: bool = True,
    ) -> None:
        self._session = DCISession(http, backoff, max_concurrent=max_concurrent)
        self._email = credentials.email
        self._tokens = TokenManager(lambda: log_in(self._session, credentials))
        self._server_reads = ServerReads(
            read_one=self._get_one_server,
            read_many=self._get_listed_servers,
            enabled=batch_server_reads,
        )
        self._free_servers = FreeServerSearches(search=self._search_free_servers)

    def __repr__(self) -> str:
        return f"DCIClient(base_url={self._session.base_url!r}, email={self._email!r})"

    async def __aenter__(self) -> DCIClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._session.aclose()

    # -- stock and servers -------------------------------------------------

    async def free_servers_by_configuration(self) -> Page[ConfigurationStock]:
        return await self._get(f"{DCI_API}/server/configuration", Page[ConfigurationStock])

    async def list_servers(
        self,
        *,
        where: Expr | None = None,
        orderby: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Page[Server]:
        query = _list_query(where=where, orderby=orderby, limit=limit, offset=offset)
        return await self._get(f"{DCI_API}/server", Page[Server], query=query)

    async def get_server(self, *, server_id: int) -> Server:
        """A fresh read of one server; reads asked at the same moment share a call
        (``app.dci.server_reads``)."""
        return await self._server_reads.get(server_id)

    async def _get_one_server(self, server_id: int) -> Server:
        return await self._get(f"{DCI_API}/server/{server_id}", Server)

    async def _get_listed_servers(self, server_ids: Sequence[int]) -> list[Server] | None:
        where = Or(tuple(Field("id").eq(server_id) for server_id in server_ids))
        query = _list_query(where=where, orderby=None, limit=len(server_ids), offset=0)
        path = f"{DCI_API}/server"
        payload = await self._authorized("GET", path, query=query, body=None)
        items = payload.get("list") if isinstance(payload, dict) else None
        if isinstance(items, list) and not all(
            isinstance(item, dict) and item.keys() >= _WHOLE_SERVER_FIELDS for item in items
        ):
            return None
        return _validated(payload, Page[Server], path).items

    async def find_free_servers(self, *, configuration: str, limit: int = 1) -> list[Server]:
        """Up to ``limit`` servers of ``configuration`` with no owner, in id order.
        Searches asked at the same moment share a call, which then returns more
        (``app.dci.free_servers``)."""
        return await self._free_servers.find(configuration, limit)

    async def _search_free_servers(self, configuration: str, limit: int) -> list[Server]:
        where = (
            Field("owner_email").is_null()
            & Field("configuration").eq(configuration)
            & Field("state").eq("ok")
        )
        page = await self.list_servers(where=where, orderby="id asc", limit=limit)
        return page.items

    async def get_operation_progress(self, *, server_id: int) -> Operation | None:
        return (await self.get_server(server_id=server_id)).operation

    # -- users -------------------------------------------------------------

    async def list_users(
        self,
        *,
        where: Expr | None = None,
        orderby: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Page[User]:
        query = _list_query(where=where, orderby=orderby, limit=limit, offset=offset)
        return await self._get(f"{DCI_API}/user", Page[User], query=query)

    async def find_user_by_email(self, *, email: str) -> User | None:
        page = await self.list_users(where=Field("email").eq(email))
        # Guards against an instance whose EQ is looser than exact equality.
        wanted = email.casefold()
        return next((user for user in page.items if (user.email or "").casefold() == wanted), None)

    async def create_user(
        self,
        *,
        email: str,
        password: SecretStr,
        full_name: str | None = None,
        phone_number: str | None = None,
        role: str | None = None,
    ) -> TaskRef:
        body: dict[str, Any] = {"email": email, "password": password.get_secret_value()}
        body.update(
            _given(full_name=full_name, phone_number=phone_number, role=role),
        )
        return await self._write("POST", f"{DCI_API}/user", body)

    # -- ownership, switch ports, power ----------------------------------

    async def set_owner(self, *, server_id: int, user_id: int) -> TaskRef:
        return await self._write("POST", f"{DCI_API}/server/{server_id}/owner", {"owner": user_id})

    async def release_owner(self, *, server_id: int) -> TaskRef:
        return await self._write("DELETE", f"{DCI_API}/server/{server_id}/owner", None)

    async def resume_ports(self, *, server_id: int) -> TaskRef:
        return await self._write("POST", f"{DCI_API}/server/{server_id}/resume", {})

    async def suspend_ports(self, *, server_id: int) -> TaskRef:
        return await self._write("POST", f"{DCI_API}/server/{server_id}/suspend", {})

    async def power_on(self, *, server_id: int) -> TaskRef:
        return await self._write("POST", f"{DCI_API}/server/{server_id}/power_on", {})

    async def power_off(self, *, server_id: int) -> TaskRef:
        return await self._write("POST", f"{DCI_API}/server/{server_id}/power_off", {})

    async def power_reset(self, *, server_id: int) -> TaskRef:
        return await self._write("POST", f"{DCI_API}/server/{server_id}/power_reset", {})

    # -- IP addresses --------------------------------------------------------

    async def list_ips(
        self,
        *,
        where: Expr | None = None,
        orderby: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Page[IPAddress]:
        query = _list_query(where=where, orderby=orderby, limit=limit, offset=offset)
        return await self._get(f"{DCI_API}/ip", Page[IPAddress], query=query)

    async def list_server_ips(self, *, server_id: int) -> Page[IPAddress]:
        return await self._get(f"{DCI_API}/server/{server_id}/ip", Page[IPAddress])

    async def allocate_ip(
        self,
        *,
        server_id: int,
        family: Literal["ipv4", "ipv6"] = "ipv4",
        domain: str | None = None,
        ip_name: str | None = None,
        ip_net: int | None = None,
        ip_pool: int | None = None,
        set_as_main_ipv4: bool | None = None,
        userspace: int | None = None,
    ) -> TaskRef:
        """Answer's ``id`` is the new IP's id; watch its ``status`` for completion."""
        body: dict[str, Any] = {"family": family}
        body.update(
            _given(
                domain=domain,
                ip_name=ip_name,
                ip_net=ip_net,
                ip_pool=ip_pool,
                set_as_main_ipv4=set_as_main_ipv4,
                userspace=userspace,
            )
        )
        return await self._write("POST", f"{DCI_API}/server/{server_id}/ip", body)

    async def remove_ip(self, *, server_id: int, ip_id: int) -> TaskRef:
        # The vendor removes an address with a POST on the address, not a DELETE.
        return await self._write("POST", f"{DCI_API}/server/{server_id}/ip/{ip_id}", {})

    async def list_networks(
        self,
        *,
        where: Expr | None = None,
        orderby: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Page[Network]:
        query = _list_query(where=where, orderby=orderby, limit=limit, offset=offset)
        return await self._get(f"{IP_API}/ipnet", Page[Network], query=query)

    async def list_pools(
        self,
        *,
        where: Expr | None = None,
        orderby: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Page[Pool]:
        query = _list_query(where=where, orderby=orderby, limit=limit, offset=offset)
        return await self._get(f"{IP_API}/ippool", Page[Pool], query=query)

    # -- operations ----------------------------------------------------------

    async def run_diagnostics(
        self,
        *,
        server_id: int,
        setup_ipmi: bool = False,
        ipmi_pool: int = 0,
        os_template_id: int = 0,
        clear_hdd: str = "none",
    ) -> TaskRef:
        body = {
            "setup_ipmi": setup_ipmi,
            "ipmi_pool": ipmi_pool,
            "os_template_id": os_template_id,
            "clear_hdd": clear_hdd,
        }
        return await self._write("POST", f"{DCI_API}/server/{server_id}/operation_diag", body)

    async def clear_disks(self, *, server_id: int, mode: str) -> TaskRef:
        return await self._write(
            "POST", f"{DCI_API}/server/{server_id}/operation_clear_hdd", {"clear_hdd": mode}
        )

    async def install_os(
        self,
        *,
        server_id: int,
        os_template_id: int,
        password: SecretStr,
        hdd_raid: str,
        ssh_pub_keys: Sequence[str] = (),
    ) -> TaskRef:
        body = {
            "hdd_raid": hdd_raid,
            "os_template_id": os_template_id,
            "password": password.get_secret_value(),
            "ssh_pub_keys": list(ssh_pub_keys),
        }
        return await self._write("POST", f"{DCI_API}/server/{server_id}/operation_os", body)

    # -- session -------------------------------------------------------------

    async def logout(self) -> None:
        """End the DCImanager session, if there is one; the next call logs in again."""
        token = self._tokens.current
        if token is None:
            return
        self._tokens.forget()
        # An expired or unknown token (4xx) is as good as logged out.
        with contextlib.suppress(DCIRequestError):
            await self._session.send(
                "DELETE",
                f"/api/auth/v4/token/{quote(token.value, safe='')}",
                token=token.value,
                safe_to_repeat=True,
                log_path="/api/auth/v4/token/<token>",
            )

    # -- plumbing ------------------------------------------------------------

    async def _get(
        self, path: str, model: type[ModelT], *, query: Mapping[str, str] | None = None
    ) -> ModelT:
        payload = await self._authorized("GET", path, query=query, body=None)
        return _validated(payload, model, path)

    async def _write(self, method: str, path: str, body: Mapping[str, Any] | None) -> TaskRef:
        payload = await self._authorized(method, path, query=None, body=body)
        try:
            return TaskRef.model_validate(payload)
        except ValidationError as exc:
            # The write was accepted, but without its id nobody can follow it up.
            raise DCIOutcomeUnknown(
                f"DCImanager {method} {path}: accepted, but the answer has no id",
                method=method,
                path=path,
            ) from exc

    async def _authorized(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
    ) -> Any:
        token = await self._tokens.get()
        try:
            return await self._session.send(method, path, token=token.value, query=query, body=body)
        except DCIAuthError:
            # A 401/403 means the call was refused, not done: safe to repeat once.
            token = await self._tokens.renew(token)
            return await self._session.send(method, path, token=token.value, query=query, body=body)


def create_dci_client(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    base_url: str | None = None,
) -> DCIClient:
    """Build the one client for the configured DCImanager.

    ``transport`` and ``base_url`` let the service drive an in-process
    simulator (``httpx.ASGITransport``) instead of a real instance.
    """
    url = base_url or (str(settings.dci_url) if settings.dci_url is not None else None)
    if url is None:
        raise ConfigurationError("no DCImanager URL: set DCIBRIDGE_DCI_URL or pass base_url")
    limits = httpx.Limits(
        max_connections=settings.dci_max_connections,
        max_keepalive_connections=settings.dci_max_connections,
    )
    http = httpx.AsyncClient(
        base_url=url,
        transport=transport or AiohttpTransport(limits=limits),
        timeout=httpx.Timeout(
            connect=settings.dci_connect_timeout,
            read=settings.dci_read_timeout,
            write=settings.dci_read_timeout,
            # Waiting for a free pooled connection is queueing behind our own
            # calls, so it may take as long as one of them.
            pool=settings.dci_read_timeout,
        ),
    )
    return DCIClient(
        http,
        credentials=Credentials(email=settings.dci_email, password=settings.dci_password),
        backoff=BackoffPolicy(budget_seconds=settings.dci_retry_503_seconds),
        max_concurrent=settings.dci_max_connections,
        batch_server_reads=settings.dci_batch_server_reads,
    )


def _validated(payload: Any, model: type[ModelT], path: str) -> ModelT:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise DCIProtocolError(
            f"DCImanager GET {path}: unexpected answer ({exc.error_count()} errors)",
            method="GET",
            path=path,
        ) from exc


def _list_query(
    *, where: Expr | None, orderby: str | None, limit: int | None, offset: int
) -> dict[str, str]:
    if offset and limit is None:
        # DCImanager only takes an offset as part of "limit=<offset>,<count>".
        raise ValueError("offset needs a limit")
    query: dict[str, str] = {}
    if where is not None:
        query["where"] = where.render()
    if orderby is not None:
        query["orderby"] = orderby
    if limit is not None:
        query["limit"] = f"{offset},{limit}" if offset else str(limit)
    return query


def _given(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}
