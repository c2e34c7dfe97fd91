"""
One aiobotocore client per connection and event loop, shared by every job wait in the triggerer.

An aiobotocore SageMaker client is ~930 KB of Python objects (the client class botocore generates with a method per
operation, copies of the event handlers, the service model's shapes) and ~42 ms of CPU to build. A trigger that
built its own and kept it for its whole wait made a triggerer with 1,000 waits ~1.8 GB and ~2 minutes to start
(bench/README.md, "Triggerer capacity"). :class:`SharedAsyncClients` hands every wait of the same
:class:`ClientKey` in the same running loop one client: opened by the first wait, closed when the last one ends.

Safe against cancellation (the triggerer cancels a trigger's task on reassignment or shutdown): taking and giving
back a reference are synchronous, so no cancellation can land between a lookup and its count; the client is opened
and closed in tasks of their own (shielded), so a cancelled wait neither leaves a half-open client nor skips the close.

Credentials: the client signs every request with its session's credentials object. Temporary credentials
(assume-role through the Airflow connection, container or instance roles) are ``AioRefreshableCredentials``, which
``AioRequestSigner.get_auth_instance`` asks for ``get_frozen_credentials()`` on every request; that refreshes them
shortly before they expire (aiobotocore/credentials.py, ``_refresh``). A shared client therefore keeps working through
hours-long waits, and refreshes once for all its waits rather than once per wait. Static keys do not expire; when the
connection is edited (rotated keys, another role), its fingerprint in the key changes, so waits that start afterwards
get a new client, while waits already running keep the one they have (as each kept its own before).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook


@dataclass(frozen=True)
class ClientKey:
    """What makes two waits' clients interchangeable. Holds no secret: the connection enters only as a hash, and not
    in the repr."""

    aws_conn_id: str | None
    service: str
    region_name: str | None
    endpoint_url: str | None
    verify: bool | str | None
    botocore_config: str  # canonical JSON of the caller's botocore config dict
    connection_fingerprint: str = field(default="", repr=False)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))


def client_key(hook: AwsBaseHook, botocore_config: dict | None = None) -> ClientKey:
    """The key of ``hook``'s async client. Reads the Airflow connection (a blocking call through the supervisor in
    the triggerer): call it in a thread, as :func:`shared_client` does."""
    conn = hook.conn_config
    fingerprint = hashlib.sha256(
        _canonical(
            [conn.conn_type, conn.login, conn.password, conn.schema, conn.extra_config, getattr(conn, "host", None)]
        ).encode()
    ).hexdigest()[:32]
    return ClientKey(
        aws_conn_id=hook.aws_conn_id,
        service=hook.client_type,
        region_name=hook.region_name,
        endpoint_url=conn.get_service_endpoint_url(service_name=hook.client_type),
        verify=hook.verify,
        botocore_config=_canonical(botocore_config),
        connection_fingerprint=fingerprint,
    )


class _Shared:
    """One client and the number of waits using it."""

    __slots__ = ("opening", "users")

    def __init__(self, opening: asyncio.Task) -> None:
        self.opening = opening  # -> (context manager, entered client)
        self.users = 0


class SharedAsyncClients:
    """Reference-counted aiobotocore clients, one per (running loop, :class:`ClientKey`).

    A client is used only from the loop it was opened in (its aiohttp session belongs to that loop): the triggerer
    runs one loop, tests may run several, and each gets its own clients.
    """

    def __init__(self) -> None:
        self._shared: dict[tuple[asyncio.AbstractEventLoop, ClientKey], _Shared] = {}
        self._closing: set[asyncio.Task] = set()  # strong references until done

    def users(self, key: ClientKey, loop: asyncio.AbstractEventLoop | None = None) -> int:
        """How many waits hold ``key``'s client in ``loop`` (default: the running loop); 0 when none is open."""
        shared = self._shared.get((loop or asyncio.get_running_loop(), key))
        return shared.users if shared else 0

    def __len__(self) -> int:
        return len(self._shared)

    # Synchronous on purpose: nothing can run (or cancel us) between the lookup and the count.
    def _acquire(
        self, loop: asyncio.AbstractEventLoop, key: ClientKey, open_client: Callable[[], Awaitable[Any]]
    ) -> _Shared:
        shared = self._shared.get((loop, key))
        if shared is None:
            shared = _Shared(loop.create_task(_open(open_client), name=f"open aiobotocore client {key!r}"))
            self._shared[(loop, key)] = shared
        shared.users += 1
        return shared

    async def _release(self, loop: asyncio.AbstractEventLoop, key: ClientKey, shared: _Shared) -> None:
        shared.users -= 1
        if shared.users:
            return
        if self._shared.get((loop, key)) is shared:
            del self._shared[(loop, key)]
        # A task of its own, so a second cancellation of the wait cannot stop the close halfway. A client still
        # opening (its only wait was cancelled meanwhile) is closed once open, without holding the cancelled wait.
        closing = loop.create_task(_close(shared.opening), name=f"close aiobotocore client {key!r}")
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        if shared.opening.done():
            await asyncio.shield(closing)


async def _open(open_client: Callable[[], Awaitable[AbstractAsyncContextManager]]) -> tuple[Any, Any]:
    context = await open_client()
    return context, await context.__aenter__()


async def _close(opening: asyncio.Task) -> None:
    await asyncio.wait([opening])
    if opening.cancelled() or opening.exception() is not None:
        return  # never opened: nothing to close (the waits saw the error)
    context, _ = opening.result()
    await context.__aexit__(None, None, None)


class _Lease:
    """One wait's hold on a shared client, as an ``async with`` object (not an ``@asynccontextmanager`` generator: a
    trigger's ``run()`` is itself an async generator, and ``dag.test()`` leaves it suspended after its first event;
    ``asyncio.run`` then closes every pending async generator at once, and a nested one would be closed twice)."""

    def __init__(
        self,
        clients: SharedAsyncClients,
        find_key: Callable[[], Awaitable[ClientKey]],
        open_client: Callable[[], Awaitable[AbstractAsyncContextManager]],
    ) -> None:
        self._clients, self._find_key, self._open_client = clients, find_key, open_client
        self._held: tuple[asyncio.AbstractEventLoop, ClientKey, _Shared] | None = None

    async def __aenter__(self) -> Any:
        key = await self._find_key()
        loop = asyncio.get_running_loop()
        shared = self._clients._acquire(loop, key, self._open_client)
        self._held = (loop, key, shared)
        try:
            _, client = await asyncio.shield(shared.opening)
        except BaseException:
            await self._release()
            raise
        return client

    async def __aexit__(self, *exc_info: object) -> None:
        await self._release()

    async def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await self._clients._release(*held)


async def in_thread(func: Callable[..., Any], *args: Any) -> Any:
    """``await sync_to_async(func)(*args)``, except that a cancellation reaches the caller with its message.

    asgiref re-raises a cancellation that lands during the thread's call as a bare ``CancelledError``; Airflow's
    triggerer tells a user's action (mark failed, clear) from a shutdown by the message it cancels with, and only
    then calls the trigger's ``on_kill``. Awaiting through ``shield`` keeps the message (the call itself finishes in
    its thread, its result unused)."""
    return await asyncio.shield(asyncio.ensure_future(sync_to_async(func)(*args)))


SHARED_CLIENTS = SharedAsyncClients()


def shared_client(hook: AwsBaseHook, botocore_config: dict | None = None) -> _Lease:
    """``hook``'s aiobotocore client, shared with every other wait of the same connection, region, endpoint, verify
    and ``botocore_config`` in the running loop (``async with shared_client(hook) as client``). The first wait opens
    it with ``hook.get_async_conn``; an error opening it reaches every wait that was waiting for it, and the next
    wait tries again."""

    async def find_key() -> ClientKey:
        return await in_thread(client_key, hook, botocore_config)

    return _Lease(SHARED_CLIENTS, find_key, hook.get_async_conn)
