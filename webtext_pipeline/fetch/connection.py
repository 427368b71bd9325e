"""A requests session whose connections pass the SSRF guard (see guard.py).

The guard sits in the connection's `_new_conn`, where urllib3 makes the
socket: one DNS lookup, every answer checked, a connect to exactly those
addresses, then the peer of the connected socket checked again — for the
first request and for every redirect hop, since each goes through the pool.
TLS still verifies the certificate against the host name (SNI unchanged);
only the address lookup is ours.
"""

from __future__ import annotations

import http.cookiejar
import socket
import time
from functools import cache

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as u3connection

from webtext_pipeline.fetch.config import FetchConfig
from webtext_pipeline.fetch.guard import AddressPolicy, BlockedAddress, checked_addresses
from webtext_pipeline.fetch.watchdog import current_slot, register


class _GuardedMixin:
    """Resolve once, refuse non-public answers, connect to exactly those addresses,
    then check the peer of the connected socket (see guard.py)."""

    policy: AddressPolicy

    def _new_conn(self) -> socket.socket:
        host, port = self._dns_host, self.port  # type: ignore[attr-defined]
        addresses = checked_addresses(self.policy, host, port)
        slot = current_slot()
        last: Exception | None = None
        for _family, address in addresses:
            if slot is not None and time.monotonic() >= slot.deadline:
                break
            try:
                sock = u3connection.create_connection(
                    (address, port),
                    self.timeout,  # type: ignore[attr-defined]
                    source_address=self.source_address,  # type: ignore[attr-defined]
                    socket_options=self.socket_options,  # type: ignore[attr-defined]
                )
            except TimeoutError:
                last = ConnectTimeoutError(self, f"connect to {host} ({address}) timed out")
                continue
            except OSError as exc:
                last = NewConnectionError(self, f"connect to {host} ({address}): {exc}")
                continue
            try:
                peer = sock.getpeername()[0]
            except OSError as exc:
                sock.close()
                last = NewConnectionError(self, f"connect to {host} ({address}): {exc}")
                continue
            if problem := self.policy.problem(peer):
                sock.close()
                raise BlockedAddress(f"connected peer of {host}: {problem}")
            register(sock)
            return sock
        raise last or ConnectTimeoutError(self, f"connect to {host}: deadline passed")

    def request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.sock is not None:  # type: ignore[attr-defined]
            register(self.sock)  # type: ignore[attr-defined]
        return super().request(*args, **kwargs)  # type: ignore[misc]


@cache
def _guarded_adapter_class(policy: AddressPolicy) -> type[HTTPAdapter]:
    """An HTTPAdapter whose pools make guarded connections (one class per policy).

    The policy rides on the classes because urllib3's pool keys reject unknown
    connection keyword arguments.
    """
    attrs = {"policy": policy}
    http_conn = type("GuardedHTTPConnection", (_GuardedMixin, HTTPConnection), attrs)
    https_conn = type("GuardedHTTPSConnection", (_GuardedMixin, HTTPSConnection), attrs)
    http_pool = type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}

    return GuardedAdapter


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """The shared session keeps no cookies; a redirect chain carries its own jar."""

    def set_ok(self, cookie, request):  # type: ignore[no-untyped-def]
        return False

    def return_ok(self, cookie, request):  # type: ignore[no-untyped-def]
        return False


def build_session(config: FetchConfig) -> requests.Session:
    """One pooled, guarded session shared by all worker threads of a Fetcher.

    trust_env=False: no proxy from the environment (the guard checks the peer,
    which would be the proxy) and no .netrc credentials sent to strangers.
    """
    policy = AddressPolicy(config.allow_private_addresses, config.allowed_networks)
    adapter = _guarded_adapter_class(policy)(
        pool_connections=max(1024, 16 * config.concurrency),
        pool_maxsize=config.per_host_concurrency + 1,
        max_retries=0,
        pool_block=False,
    )
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
