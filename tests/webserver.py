"""A misbehaving web server on loopback, for the fetch tests, later stages and benchmarks.

    with WebServer() as server:                 # 127.0.0.1, a free port
        server.url("/fine")                     # http://127.0.0.1:PORT/fine
        server.count("/fine")                   # how many times it was requested
        server.robots = "User-agent: *\\nDisallow: /private/\\n"

    WebServer(addresses=["127.0.1.1", "127.0.1.2", ...], latency=0.1)   # many hosts
    python tests/webserver.py --hosts 256 --latency 0.1    # as a process (prints its port)

Every page is one route below (`ROUTES`, `PREFIX_ROUTES`); `server.route(path)`
adds one for a test. A ThreadingHTTPServer per address, all served by one
accept loop; handler threads are daemons and long handlers (slow, drip, huge)
give up when the server stops. `latency` delays every answer (benchmarks).
HTTP/1.1 with keep-alive: every response has a Content-Length or is chunked.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import selectors
import signal
import socket
import socketserver
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

FINE_HTML = (
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Fine</title></head>"
    "<body><p>A fine page, served with care: café, naïve, jalapeño.</p></body></html>"
)
FINE_TEXT = "A fine page, served with care: café, naïve, jalapeño."
CP1252_TEXT = "Café crème – naïve “quotes” for €5"
SJIS_TEXT = "日本語のページです。文字コードはシフトJISです。"
PDF_BYTES = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF\n"
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 32
BOMB_DECODED_BYTES = 64 * 1024 * 1024

_bomb: bytes | None = None


def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzipped to ~64 KB (made once per process)."""
    global _bomb
    if _bomb is None:
        engine = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        block = b"\0" * (1 << 20)
        parts = [engine.compress(block) for _ in range(BOMB_DECODED_BYTES >> 20)]
        _bomb = b"".join(parts) + engine.flush()
    return _bomb


def filler_html(title: str, size: int) -> bytes:
    """A deterministic HTML page of about `size` bytes."""
    sentence = "The committee reviewed the annual report on the river bridge and its budget. "
    paragraph = "<p>" + sentence * 8 + "</p>\n"
    head = f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>"
    body = [head]
    length = len(head)
    while length < size:
        body.append(paragraph)
        length += len(paragraph)
    body.append("</body></html>")
    return "".join(body).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    # --- helpers for routes -------------------------------------------------------

    @property
    def state(self) -> WebServer:
        return self.server.owner

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def send(self, status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = (),
             content_type: str | None = "text/html; charset=utf-8") -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def html(self, text: str, status: int = 200) -> None:
        self.send(status, text.encode())

    def redirect(self, location: str, status: int = 302,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send(status, b"<html>moved</html>", [("Location", location), *headers])

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True if it is still running."""
        return not self.state.stopping.wait(seconds)

    # --- dispatch --------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        state = self.state
        state.record(self)
        if state.latency and not self.sleep(state.latency):
            return
        path = urlsplit(self.path).path
        handler = state.routes.get(path)
        if handler is None:
            for prefix, prefix_handler in state.prefix_routes:
                if path.startswith(prefix):
                    handler = prefix_handler
                    break
        if handler is None:
            self.send(404, b"<html><body><h1>Not found</h1></body></html>")
            return
        try:
            handler(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True


# --- the routes --------------------------------------------------------------------------


def fine(h: Handler) -> None:
    h.html(FINE_HTML)


def page(h: Handler) -> None:
    """/page/<anything>: a generated page of `page_bytes` bytes."""
    h.send(200, filler_html(h.path, h.state.page_bytes))


def slow(h: Handler) -> None:
    """/slow?s=5: answer after s seconds."""
    if h.sleep(float(h.query.get("s", "5"))):
        fine(h)


def drip(h: Handler) -> None:
    """/drip?n=1000&every=1: headers at once, then one body byte every `every` seconds."""
    n, every = int(h.query.get("n", "1000")), float(h.query.get("every", "1"))
    h.send_response(200)
    h.send_header("Content-Type", "text/html; charset=utf-8")
    h.send_header("Content-Length", str(n))
    h.end_headers()
    h.wfile.flush()
    for _ in range(n):
        if not h.sleep(every):
            return
        h.wfile.write(b"x")
        h.wfile.flush()


def missing(h: Handler) -> None:
    h.send(404, b"<html><body><h1>Not found</h1></body></html>")


def flaky(h: Handler) -> None:
    """500 on the first request of this exact path+query, fine afterwards."""
    if h.state.count(h.path) <= 1:
        h.send(500, b"<html>oops</html>")
    else:
        fine(h)


def always_500(h: Handler) -> None:
    h.send(503, b"<html>down</html>")


def busy(h: Handler) -> None:
    """/busy?after=1: 429 with Retry-After on the first request, fine afterwards."""
    if h.state.count(h.path) <= 1:
        h.send(429, b"<html>slow down</html>", [("Retry-After", h.query.get("after", "1"))])
    else:
        fine(h)


def busy_long(h: Handler) -> None:
    h.send(429, b"<html>come back tomorrow</html>", [("Retry-After", "3600")])


def redirect_chain(h: Handler) -> None:
    """/redirect/chain/<n>: n redirects, then the fine page."""
    n = int(urlsplit(h.path).path.rsplit("/", 1)[1])
    if n <= 0:
        fine(h)
    else:
        h.redirect(f"/redirect/chain/{n - 1}", status=301 if n % 2 else 302)


def redirect_loop(h: Handler) -> None:
    """/redirect/loop/a -> /redirect/loop/b -> /redirect/loop/a."""
    other = "b" if urlsplit(h.path).path.endswith("/a") else "a"
    h.redirect(f"/redirect/loop/{other}")


def redirect_to(h: Handler) -> None:
    """/redirect/to?url=<absolute URL>: one redirect anywhere (e.g. a private address)."""
    h.redirect(h.query["url"])


def redirect_none(h: Handler) -> None:
    h.send(302, b"<html>no location</html>")


def cookie_redirect(h: Handler) -> None:
    """Sets a cookie and redirects to /cookie/check, which insists on the cookie."""
    h.redirect("/cookie/check", headers=[("Set-Cookie", "visited=yes; Path=/")])


def cookie_check(h: Handler) -> None:
    if "visited=yes" in (h.headers.get("Cookie") or ""):
        fine(h)
    else:
        h.redirect("/cookie/start")


def huge(h: Handler) -> None:
    """/huge?mb=8: a large HTML page with a Content-Length."""
    size = int(float(h.query.get("mb", "8")) * (1 << 20))
    h.send_response(200)
    h.send_header("Content-Type", "text/html; charset=utf-8")
    h.send_header("Content-Length", str(size))
    h.end_headers()
    _stream(h, size, chunked=False)


def huge_chunked(h: Handler) -> None:
    """/huge-chunked?mb=8: the same, chunked (no length known up front)."""
    size = int(float(h.query.get("mb", "8")) * (1 << 20))
    h.send_response(200)
    h.send_header("Content-Type", "text/html; charset=utf-8")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    _stream(h, size, chunked=True)


def _stream(h: Handler, size: int, chunked: bool) -> None:
    block = (b"<p>" + b"big " * 16380 + b"</p>")[: 1 << 16]
    sent = 0
    try:
        while sent < size and not h.state.stopping.is_set():
            part = block[: size - sent]
            h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            sent += len(part)
        if chunked:
            h.wfile.write(b"0\r\n\r\n")
    except OSError:
        h.close_connection = True


def bomb(h: Handler) -> None:
    """64 MiB of zeros as ~64 KB of gzip, labelled HTML."""
    h.send(200, gzip_bomb(), [("Content-Encoding", "gzip")])


def gzipped(h: Handler) -> None:
    h.send(200, gzip.compress(FINE_HTML.encode(), mtime=0), [("Content-Encoding", "gzip")])


def pdf_as_html(h: Handler) -> None:
    h.send(200, PDF_BYTES)


def jpeg_as_html(h: Handler) -> None:
    h.send(200, JPEG_BYTES)


def pdf(h: Handler) -> None:
    h.send(200, PDF_BYTES * 1000, content_type="application/pdf")


def text_plain(h: Handler) -> None:
    h.send(200, b"just text", content_type="text/plain; charset=utf-8")


def cp1252_meta(h: Handler) -> None:
    """windows-1252 bytes; the charset only in a <meta charset> tag."""
    body = (f"<html><head><meta charset=\"windows-1252\"><title>x</title></head>"
            f"<body><p>{CP1252_TEXT}</p></body></html>").encode("cp1252")
    h.send(200, body, content_type="text/html")


def sjis_meta(h: Handler) -> None:
    """Shift_JIS bytes; the charset only in an http-equiv meta tag."""
    body = ("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; "
            f"charset=Shift_JIS\"><title>x</title></head><body><p>{SJIS_TEXT}</p></body></html>")
    h.send(200, body.encode("shift_jis"), content_type="text/html")


def wrong_charset(h: Handler) -> None:
    """The header says UTF-8; the bytes (and the meta tag) are windows-1252."""
    body = (f"<html><head><meta charset=\"windows-1252\"></head>"
            f"<body><p>{CP1252_TEXT}</p></body></html>").encode("cp1252")
    h.send(200, body, content_type="text/html; charset=utf-8")


def wrong_charset_no_meta(h: Handler) -> None:
    """The header says UTF-8; the bytes are Shift_JIS; nothing else says so."""
    body = f"<html><body><p>{SJIS_TEXT * 4}</p></body></html>".encode("shift_jis")
    h.send(200, body, content_type="text/html; charset=utf-8")


def latin1_header_utf8_body(h: Handler) -> None:
    """A stale iso-8859-1 header on a UTF-8 body."""
    h.send(200, FINE_HTML.replace('<meta charset="utf-8">', "").encode(),
           content_type="text/html; charset=iso-8859-1")


def no_charset(h: Handler) -> None:
    """UTF-8 bytes and no charset anywhere."""
    h.send(200, FINE_HTML.replace('<meta charset="utf-8">', "").encode(),
           content_type="text/html")


def no_content_type(h: Handler) -> None:
    h.send(200, FINE_HTML.encode(), content_type=None)


def no_content_type_binary(h: Handler) -> None:
    h.send(200, PNG_BYTES, content_type=None)


def reset(h: Handler) -> None:
    """Promise 10 000 bytes, send 100, then reset the connection (RST)."""
    h.send_response(200)
    h.send_header("Content-Type", "text/html; charset=utf-8")
    h.send_header("Content-Length", "10000")
    h.end_headers()
    h.wfile.write(b"<html>" + b"x" * 94)
    h.wfile.flush()
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()
    h.close_connection = True


def garbage(h: Handler) -> None:
    """Not HTTP at all: a banner from another protocol, then hang up."""
    h.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    h.wfile.flush()
    h.close_connection = True


def robots(h: Handler) -> None:
    state = h.state
    if state.robots is None:
        missing(h)
    else:
        h.send(state.robots_status, state.robots.encode(), content_type="text/plain")


ROUTES: dict[str, Callable[[Handler], None]] = {
    "/fine": fine, "/slow": slow, "/drip": drip, "/missing": missing, "/flaky": flaky,
    "/always-500": always_500, "/busy": busy, "/busy-long": busy_long,
    "/redirect/to": redirect_to, "/redirect/none": redirect_none,
    "/cookie/start": cookie_redirect, "/cookie/check": cookie_check,
    "/huge": huge, "/huge-chunked": huge_chunked, "/gzip-bomb": bomb, "/gzip": gzipped,
    "/pdf-as-html": pdf_as_html, "/jpeg-as-html": jpeg_as_html, "/pdf": pdf, "/text": text_plain,
    "/cp1252-meta": cp1252_meta, "/sjis-meta": sjis_meta, "/wrong-charset": wrong_charset,
    "/wrong-charset-no-meta": wrong_charset_no_meta,
    "/latin1-header-utf8-body": latin1_header_utf8_body, "/no-charset": no_charset,
    "/no-content-type": no_content_type, "/no-content-type-binary": no_content_type_binary,
    "/reset": reset, "/garbage": garbage, "/robots.txt": robots,
}
PREFIX_ROUTES: list[tuple[str, Callable[[Handler], None]]] = [
    ("/redirect/chain/", redirect_chain), ("/redirect/loop/", redirect_loop),
    ("/page/", page), ("/private/", fine),
]


# --- the server ------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: WebServer

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        pass  # clients hanging up mid-answer is the normal case here

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) of the address: slow,
        # and traffic off the machine. The name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class WebServer:
    """The misbehaving server: start(), url(), count(), stop() (or use `with`)."""

    def __init__(self, addresses: Iterable[str] = ("127.0.0.1",), latency: float = 0.0,
                 page_bytes: int = 4000, robots: str | None = None,
                 robots_status: int = 200) -> None:
        self.addresses = list(addresses)
        self.latency = latency
        self.page_bytes = page_bytes
        self.robots = robots
        self.robots_status = robots_status
        self.routes = dict(ROUTES)
        self.prefix_routes = list(PREFIX_ROUTES)
        self.counts: Counter[str] = Counter()
        self.hosts: Counter[str] = Counter()  # requests per address connected to
        self.log: list[tuple[float, str, str]] = []  # (monotonic time, Host header, path)
        self.stopping = threading.Event()
        self.port = 0
        self._lock = threading.Lock()
        self._servers: list[_Server] = []
        self._thread: threading.Thread | None = None

    # --- test helpers --------------------------------------------------------------

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.addresses[0]}:{self.port}{path}"

    def count(self, path: str) -> int:
        """Requests so far for `path` (with its query string, exactly as requested)."""
        with self._lock:
            return self.counts[path]

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def route(self, path: str) -> Callable[[Callable[[Handler], None]], Callable[[Handler], None]]:
        def register(fn: Callable[[Handler], None]) -> Callable[[Handler], None]:
            self.routes[path] = fn
            return fn
        return register

    def record(self, handler: Handler) -> None:
        with self._lock:
            self.counts[handler.path] += 1
            self.hosts[handler.connection.getsockname()[0]] += 1
            self.log.append((time.monotonic(), handler.headers.get("Host", ""), handler.path))

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> WebServer:
        for _attempt in range(20):
            try:
                self._bind()
                break
            except OSError:
                self._close_servers()
        else:
            raise RuntimeError("could not bind the test server on one port for all addresses")
        self._thread = threading.Thread(target=self._serve, name="webserver", daemon=True)
        self._thread.start()
        return self

    def _bind(self) -> None:
        port = 0
        for address in self.addresses:
            server = _Server((address, port), Handler, bind_and_activate=False)
            server.allow_reuse_address = True
            server.request_queue_size = 1024
            self._servers.append(server)
            server.server_bind()
            server.server_activate()
            server.owner = self
            port = server.server_address[1]
        self.port = port

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            for server in self._servers:
                selector.register(server, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select(timeout=0.05):
                    server = key.fileobj
                    try:
                        request, address = server.get_request()  # type: ignore[union-attr]
                    except OSError:
                        continue
                    try:
                        server.process_request(request, address)  # type: ignore[union-attr]
                    except Exception:
                        server.shutdown_request(request)  # type: ignore[union-attr]

    def _close_servers(self) -> None:
        for server in self._servers:
            server.server_close()
        self._servers = []

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_servers()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def loopback_hosts(n: int) -> list[str]:
    """`n` distinct loopback addresses other than 127.0.0.1 (all of 127/8 is loopback)."""
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(n)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1, help="loopback addresses to serve on")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--page-bytes", type=int, default=4000)
    parser.add_argument("--robots", default=None, help="robots.txt body (default: 404)")
    args = parser.parse_args(argv)
    addresses = ["127.0.0.1"] if args.hosts <= 1 else loopback_hosts(args.hosts)
    server = WebServer(addresses, latency=args.latency, page_bytes=args.page_bytes,
                       robots=args.robots).start()
    print(json.dumps({"port": server.port, "addresses": addresses}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stopping.set())
    with contextlib.suppress(KeyboardInterrupt):
        server.stopping.wait()
    server.stop()


if __name__ == "__main__":
    main()
