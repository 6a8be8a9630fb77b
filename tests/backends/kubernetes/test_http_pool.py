"""The pool of keep-alive connections the API calls go over, against small servers on loopback
whose every byte the test chooses: what a caller gets back, and what the server sees."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from kubernetes.aio import client as k8s
from yarl import URL

from scheduler.backends.kubernetes import http
from scheduler.backends.kubernetes.client import KubeApi, Resource
from scheduler.backends.kubernetes.http import Answer, HttpError, HttpPool
from tests.backends.kubernetes.http_pool_servers import (
    Answerer,
    ConnectProxy,
    HttpServer,
    Peer,
    Request,
    answer,
    answering_ok,
)
from tests.conftest import wait_until

Serve = Callable[..., Awaitable[HttpServer]]
MakePool = Callable[..., HttpPool]
StartKubeApi = Callable[[URL], Awaitable[KubeApi]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts HTTP servers that stop at the end of the test."""
    async with contextlib.AsyncExitStack() as servers:

        async def start(
            answerer: Answerer = answering_ok, ssl_context: ssl.SSLContext | None = None
        ) -> HttpServer:
            return await servers.enter_async_context(HttpServer(answerer, ssl_context))

        yield start


@pytest.fixture
async def pool() -> AsyncIterator[MakePool]:
    """Makes pools (4 connections, 5 s per call unless told) closed at the end of the test."""
    made: list[HttpPool] = []

    def make(server: URL, **options: Any) -> HttpPool:
        options = {"size": 4, "seconds": 5.0, "ssl_context": None, **options}
        made.append(HttpPool(server, **options))
        return made[-1]

    yield make
    for each in made:
        await each.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client's context that trusts the test's certificate."""
    return ssl.create_default_context(cafile=str(certificate[0]))


def seen(server: HttpServer | ConnectProxy) -> list[tuple[int, str, str]]:
    """The requests the server saw: on which of its connections, the method, the target."""
    return [(request.connection, request.method, request.target) for request in server.requests]


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@contextlib.contextmanager
def a_closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- keep-alive and the pool's size -------------------------------------------------------------


async def test_consecutive_calls_reuse_one_kept_alive_connection(
    serve: Serve, pool: MakePool
) -> None:
    server = await serve()
    calls = pool(server.url)
    for _ in range(3):
        assert await calls.request("GET", "/api/v1/x") == Answer(200, b"ok")
    assert seen(server) == [(1, "GET", "/api/v1/x")] * 3


async def test_at_most_size_calls_are_in_flight_at_once_and_the_rest_wait_their_turn(
    serve: Serve, pool: MakePool
) -> None:
    released = asyncio.Event()

    async def answering_once_released(request: Request, peer: Peer) -> None:
        await released.wait()
        peer.write(answer(200, request.target.encode()))

    server = await serve(answering_once_released)
    calls = pool(server.url, size=3)
    answers = asyncio.gather(*(calls.request("GET", f"/{n}") for n in range(10)))

    async def three_held() -> bool:
        return server.in_flight >= 3

    await wait_until(three_held)
    released.set()
    assert await answers == [Answer(200, f"/{n}".encode()) for n in range(10)]
    assert server.most_in_flight == 3
    assert server.connections == 3


# -- answers ------------------------------------------------------------------------------------


async def test_an_answer_with_a_content_length_is_read_whole(serve: Serve, pool: MakePool) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: it arrives in many pieces

    async def answering_large(request: Request, peer: Peer) -> None:
        peer.write(answer(200, body, {"Content-Type": "application/octet-stream"}))

    server = await serve(answering_large)
    assert await pool(server.url).request("GET", "/large") == Answer(200, body)


async def test_a_chunked_answer_is_read_whole_and_its_connection_is_reused(
    serve: Serve, pool: MakePool
) -> None:
    async def answering_in_chunks(request: Request, peer: Peer) -> None:
        peer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for chunk in (b'{"kind":', b'"ConfigMap"', b"}"):
            await asyncio.sleep(0.01)  # each chunk on its own
            peer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        peer.write(b"0\r\n\r\n")

    server = await serve(answering_in_chunks)
    calls = pool(server.url)
    for _ in range(2):
        assert await calls.request("GET", "/") == Answer(200, b'{"kind":"ConfigMap"}')
    assert server.connections == 1


async def test_an_answer_without_a_length_ends_when_the_server_closes_and_is_returned_whole(
    serve: Serve, pool: MakePool
) -> None:
    async def answering_until_closing(request: Request, peer: Peer) -> None:
        peer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        for piece in (b'{"kind":', b'"ConfigMap"}'):
            await asyncio.sleep(0.01)  # each piece on its own
            peer.write(piece)
        peer.close()

    server = await serve(answering_until_closing)
    calls = pool(server.url)
    for _ in range(2):
        assert await calls.request("GET", "/") == Answer(200, b'{"kind":"ConfigMap"}')
    # The close ended each answer, so each call had a connection of its own.
    assert seen(server) == [(1, "GET", "/"), (2, "GET", "/")]


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
    ids=["103", "100"],
)
async def test_an_interim_answer_is_skipped_for_the_final_one_and_the_connection_reused(
    serve: Serve, pool: MakePool, interim: bytes
) -> None:
    async def answering_after_an_interim_answer(request: Request, peer: Peer) -> None:
        peer.write(interim)
        peer.write(answer(200, request.target.encode()))

    server = await serve(answering_after_an_interim_answer)
    calls = pool(server.url)
    assert await calls.request("GET", "/a") == Answer(200, b"/a")
    assert await calls.request("GET", "/b") == Answer(200, b"/b")
    assert seen(server) == [(1, "GET", "/a"), (1, "GET", "/b")]


async def test_an_interim_answer_then_a_close_is_an_error_not_the_interim_answer(
    serve: Serve, pool: MakePool
) -> None:
    async def answering_early_hints_then_closing(request: Request, peer: Peer) -> None:
        peer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        await asyncio.sleep(0.01)
        peer.close()

    server = await serve(answering_early_hints_then_closing)
    with pytest.raises(HttpError, match="closed in the middle of an answer"):
        await pool(server.url).request("GET", "/a")


async def test_a_connection_that_carried_an_answer_nobody_asked_for_is_not_reused(
    serve: Serve, pool: MakePool
) -> None:
    async def answering_twice(request: Request, peer: Peer) -> None:
        peer.write(answer(200, request.target.encode()))
        if request.connection == 1:
            await asyncio.sleep(0.01)
            peer.write(answer(200, b"stray"))  # while the connection is idle in the pool

    server = await serve(answering_twice)
    calls = pool(server.url)
    assert await calls.request("GET", "/a") == Answer(200, b"/a")
    await asyncio.sleep(0.1)
    assert await calls.request("GET", "/b") == Answer(200, b"/b")
    assert seen(server) == [(1, "GET", "/a"), (2, "GET", "/b")]


async def test_a_204_has_an_empty_body_and_its_connection_is_reused(
    serve: Serve, pool: MakePool
) -> None:
    async def answering_no_content(request: Request, peer: Peer) -> None:
        peer.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = await serve(answering_no_content)
    calls = pool(server.url)
    for _ in range(2):
        assert await calls.request("DELETE", "/x") == Answer(204, b"")
    assert server.connections == 1


async def test_a_404_is_returned_with_its_body_not_raised(serve: Serve, pool: MakePool) -> None:
    status = b'{"kind":"Status","reason":"NotFound","code":404}'

    async def answering_not_found(request: Request, peer: Peer) -> None:
        peer.write(answer(404, status, {"Content-Type": "application/json"}))

    server = await serve(answering_not_found)
    assert await pool(server.url).request("GET", "/x") == Answer(404, status)


async def test_after_an_answer_with_connection_close_the_next_call_opens_a_new_connection(
    serve: Serve, pool: MakePool
) -> None:
    async def answering_and_saying_close(request: Request, peer: Peer) -> None:
        # The server leaves the connection open: only the header tells the pool not to reuse it.
        peer.write(answer(200, b"ok", {"Connection": "close"}))

    server = await serve(answering_and_saying_close)
    calls = pool(server.url)
    assert await calls.request("GET", "/1") == Answer(200, b"ok")
    assert await calls.request("GET", "/2") == Answer(200, b"ok")
    assert seen(server) == [(1, "GET", "/1"), (2, "GET", "/2")]


async def test_a_request_body_reaches_the_server_with_its_length_and_the_headers_given(
    serve: Serve, pool: MakePool
) -> None:
    server = await serve()
    calls = pool(server.url, headers={"User-Agent": "job-scheduler"})
    await calls.request("POST", "/x", body=b'{"a":1}', headers={"Content-Type": "application/json"})
    [request] = server.requests
    assert request.body == b'{"a":1}'
    assert request.headers["content-length"] == "7"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "job-scheduler"
    assert request.headers["host"] == f"127.0.0.1:{server.url.port}"


# -- a kept-alive connection the server closed ---------------------------------------------------


async def closing_on_a_second_request(request: Request, peer: Peer) -> None:
    """Answers the first request on each connection; closes the connection on receiving a
    second, as a server whose keep-alive time ran out just as the request arrived."""
    if request.number == 1:
        peer.write(answer(200, request.target.encode()))
    else:
        peer.close()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_idempotent_call_on_a_reused_connection_the_server_closed_is_made_again(
    serve: Serve, pool: MakePool, method: str
) -> None:
    server = await serve(closing_on_a_second_request)
    calls = pool(server.url)
    assert await calls.request(method, "/a") == Answer(200, b"/a")
    assert await calls.request(method, "/b") == Answer(200, b"/b")
    assert seen(server) == [(1, method, "/a"), (1, method, "/b"), (2, method, "/b")]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_call_not_idempotent_on_a_reused_connection_the_server_closed_is_an_error(
    serve: Serve, pool: MakePool, method: str
) -> None:
    server = await serve(closing_on_a_second_request)
    calls = pool(server.url)
    assert await calls.request(method, "/a", body=b"{}") == Answer(200, b"/a")
    with pytest.raises(HttpError, match="closed before an answer"):
        await calls.request(method, "/b", body=b"{}")
    assert seen(server) == [(1, method, "/a"), (1, method, "/b")]


async def test_a_post_after_the_server_closed_the_idle_connection_goes_on_a_new_one(
    serve: Serve, pool: MakePool
) -> None:
    async def answering_then_closing(request: Request, peer: Peer) -> None:
        peer.write(answer(200, b"ok"))  # no "Connection: close": the pool learns of it late
        peer.close()

    server = await serve(answering_then_closing)
    calls = pool(server.url)
    assert await calls.request("POST", "/a", body=b"{}") == Answer(200, b"ok")

    async def close_noticed() -> bool:
        # The pool's own view: the close has reached it, as it would have after any pause.
        return all(connection.lost for connection in calls._idle)

    await wait_until(close_noticed)
    assert await calls.request("POST", "/b", body=b"{}") == Answer(200, b"ok")
    assert seen(server) == [(1, "POST", "/a"), (2, "POST", "/b")]


async def test_a_connection_idle_longer_than_the_keep_alive_time_is_closed_not_reused(
    serve: Serve, pool: MakePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "IDLE_SECONDS", 0.05)
    server = await serve()
    calls = pool(server.url)
    await calls.request("GET", "/1")
    await asyncio.sleep(0.1)  # past the keep-alive time
    await calls.request("GET", "/2")
    assert seen(server) == [(1, "GET", "/1"), (2, "GET", "/2")]

    async def first_closed() -> bool:
        return server.closed_connections == 1

    await wait_until(first_closed)


# -- no answer ----------------------------------------------------------------------------------


async def test_what_is_not_http_is_an_error(serve: Serve, pool: MakePool) -> None:
    async def answering_ssh(request: Request, peer: Peer) -> None:
        peer.write(b"SSH-2.0-OpenSSH_9.2p1\r\n")

    server = await serve(answering_ssh)
    with pytest.raises(HttpError, match="not HTTP"):
        await pool(server.url).request("GET", "/")


async def test_a_server_that_never_answers_is_an_error_after_the_pools_time(
    serve: Serve, pool: MakePool
) -> None:
    async def never_answering(request: Request, peer: Peer) -> None:
        await asyncio.Event().wait()

    server = await serve(never_answering)
    started = time.monotonic()
    with pytest.raises(HttpError, match=r"no answer within 0\.3 s"):
        await pool(server.url, seconds=0.3).request("GET", "/")
    assert 0.3 <= time.monotonic() - started < 2


async def test_a_new_connection_closed_without_an_answer_is_an_error_even_for_a_get(
    serve: Serve, pool: MakePool
) -> None:
    async def closing(request: Request, peer: Peer) -> None:
        peer.close()

    server = await serve(closing)
    with pytest.raises(HttpError, match="closed before an answer"):
        await pool(server.url).request("GET", "/")
    assert seen(server) == [(1, "GET", "/")]


async def test_an_answer_cut_short_of_its_content_length_by_a_close_is_an_error(
    serve: Serve, pool: MakePool
) -> None:
    async def closing_half_way(request: Request, peer: Peer) -> None:
        peer.write(answer(200, b"0123456789")[:-5])  # "Content-Length: 10", 5 bytes
        peer.close()

    server = await serve(closing_half_way)
    with pytest.raises(HttpError, match="in the middle of an answer"):
        await pool(server.url).request("GET", "/")


async def test_a_refused_connection_is_an_error(pool: MakePool) -> None:
    with a_closed_port() as port, pytest.raises(HttpError, match="cannot connect"):
        await pool(URL(f"http://127.0.0.1:{port}")).request("GET", "/")


# -- TLS ----------------------------------------------------------------------------------------


async def test_https_calls_go_over_tls_verified_with_the_context_given(
    serve: Serve, pool: MakePool, server_tls: ssl.SSLContext, trusting: ssl.SSLContext
) -> None:
    server = await serve(ssl_context=server_tls)
    calls = pool(server.url, ssl_context=trusting)
    for _ in range(2):
        assert await calls.request("GET", "/api") == Answer(200, b"ok")
    assert server.connections == 1


async def test_an_https_server_the_default_context_does_not_trust_is_an_error(
    serve: Serve, pool: MakePool, server_tls: ssl.SSLContext
) -> None:
    server = await serve(ssl_context=server_tls)
    with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
        await pool(server.url, ssl_context=None).request("GET", "/api")
    assert server.requests == []


@pytest.mark.parametrize(
    ("server_hostname", "verified"), [("localhost", True), ("elsewhere.test", False)]
)
async def test_the_certificate_is_verified_for_the_server_hostname_given(
    serve: Serve,
    pool: MakePool,
    server_tls: ssl.SSLContext,
    trusting: ssl.SSLContext,
    server_hostname: str,
    verified: bool,
) -> None:
    server = await serve(ssl_context=server_tls)
    calls = pool(server.url, ssl_context=trusting, server_hostname=server_hostname)
    if verified:
        assert await calls.request("GET", "/") == Answer(200, b"ok")
    else:
        with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
            await calls.request("GET", "/")


# -- through a proxy ----------------------------------------------------------------------------


async def test_through_a_proxy_an_http_call_names_the_whole_url_and_carries_the_credentials(
    serve: Serve, pool: MakePool
) -> None:
    async def answering_as_the_proxy(request: Request, peer: Peer) -> None:
        peer.write(answer(200, b"from the proxy"))

    proxy = await serve(answering_as_the_proxy)
    calls = pool(
        URL("http://api.test:8080"),
        proxy=URL(f"http://us%40er:p%3As%20s@127.0.0.1:{proxy.url.port}"),
        proxy_headers={"X-Tenant": "t1"},
    )
    for _ in range(2):
        assert await calls.request("GET", "/api/v1/x") == Answer(200, b"from the proxy")
    assert seen(proxy) == [(1, "GET", "http://api.test:8080/api/v1/x")] * 2
    headers = proxy.requests[0].headers
    assert headers["proxy-authorization"] == basic("us@er:p:s s")
    assert headers["x-tenant"] == "t1"
    assert headers["host"] == "api.test:8080"


async def test_proxy_credentials_are_percent_decoded_once(serve: Serve, pool: MakePool) -> None:
    proxy = await serve()
    calls = pool(URL("http://api.test"), proxy=URL(f"http://a%2541:p%2525@{proxy.url.authority}"))
    await calls.request("GET", "/")
    assert proxy.requests[0].headers["proxy-authorization"] == basic("a%41:p%25")


async def test_through_a_proxy_an_https_call_tunnels_with_connect_then_speaks_tls(
    serve: Serve, pool: MakePool, server_tls: ssl.SSLContext, trusting: ssl.SSLContext
) -> None:
    server = await serve(ssl_context=server_tls)
    async with ConnectProxy() as proxy:
        calls = pool(
            server.url,
            ssl_context=trusting,
            proxy=proxy.url.with_user("user").with_password("secret"),
            proxy_headers={"X-Tenant": "t1"},
        )
        for _ in range(2):
            assert await calls.request("GET", "/api/v1/x") == Answer(200, b"ok")
        authority = f"127.0.0.1:{server.url.port}"
        assert seen(proxy) == [(1, "CONNECT", authority)]
        [connect] = proxy.requests
        assert connect.headers["proxy-authorization"] == basic("user:secret")
        assert connect.headers["x-tenant"] == "t1"
        assert connect.headers["host"] == authority
        # Inside the tunnel the server sees plain requests, and none of the proxy's credentials.
        assert seen(server) == [(1, "GET", "/api/v1/x")] * 2
        assert not {"proxy-authorization", "x-tenant"} & server.requests[0].headers.keys()


async def test_a_proxy_refusing_connect_is_an_error_naming_its_status(
    pool: MakePool, trusting: ssl.SSLContext
) -> None:
    async with ConnectProxy(status=407) as proxy:
        calls = pool(URL("https://api.test:6443"), ssl_context=trusting, proxy=proxy.url)
        with pytest.raises(HttpError, match="407"):
            await calls.request("GET", "/api")
        assert seen(proxy) == [(1, "CONNECT", "api.test:6443")]


@pytest.mark.parametrize("proxy", ["https://proxy.test:3128", "socks5://proxy.test:1080"])
def test_only_an_http_proxy_is_accepted(proxy: str) -> None:
    with pytest.raises(ValueError, match="only an http:// proxy"):
        HttpPool(URL("https://api.test"), size=1, seconds=1, ssl_context=None, proxy=URL(proxy))


# -- refused before anything is sent ------------------------------------------------------------


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "CONNECT"])
async def test_a_method_other_than_get_put_delete_post_patch_is_refused_and_nothing_is_sent(
    serve: Serve, pool: MakePool, method: str
) -> None:
    server = await serve()
    with pytest.raises(ValueError, match=f"not a method .*: {method}"):
        await pool(server.url).request(method, "/")
    assert server.connections == 0


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/a b", id="space"),
        pytest.param("api/v1/x", id="relative"),
        pytest.param("http://elsewhere/x", id="absolute"),
        pytest.param("/a\r\nX-A: b", id="crlf"),
        pytest.param("/a\nb", id="lf"),
        pytest.param("/a\tb", id="tab"),
        pytest.param("/caf\u00e9", id="not-ascii"),
    ],
)
async def test_a_target_that_is_not_quoted_is_refused_and_nothing_is_sent(
    serve: Serve, pool: MakePool, target: str
) -> None:
    server = await serve()
    with pytest.raises(ValueError, match="not a quoted path and query"):
        await pool(server.url).request("GET", target)
    assert server.connections == 0


@pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r"])
async def test_a_header_value_with_a_line_break_is_refused_and_nothing_is_sent(
    serve: Serve, pool: MakePool, line_break: str
) -> None:
    server = await serve()
    calls = pool(server.url)
    with pytest.raises(ValueError, match="line break"):
        await calls.request("GET", "/", headers={"Authorization": f"Bearer t{line_break}X-A: b"})
    with pytest.raises(ValueError, match="line break"):
        pool(server.url, headers={"User-Agent": f"a{line_break}X-A: b"})
    assert server.connections == 0


# -- through KubeApi ----------------------------------------------------------------------------


@pytest.fixture
async def kube_api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartKubeApi]:
    """Starts KubeApis on namespace myapp-dev toward a host, closed at the end of the test."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)  # the calls go straight to the test's server
    started: list[KubeApi] = []

    async def start(host: URL) -> KubeApi:
        started.append(KubeApi("myapp-dev", configuration=k8s.Configuration(host=str(host))))
        await started[-1].start()
        return started[-1]

    yield start
    for api in started:
        await api.close()


async def answering_empty_json(request: Request, peer: Peer) -> None:
    peer.write(answer(200, b"{}", {"Content-Type": "application/json"}))


async def test_kube_api_calls_go_under_the_path_of_the_configured_host(
    serve: Serve, kube_api: StartKubeApi
) -> None:
    server = await serve(answering_empty_json)
    api = await kube_api(server.url / "k8s" / "clusters" / "c1")
    assert await api.get(Resource.CONFIGMAPS, "x") == {}
    assert await api.get(Resource.JOBS, "y") == {}
    assert seen(server) == [
        (1, "GET", "/k8s/clusters/c1/api/v1/namespaces/myapp-dev/configmaps/x"),
        (1, "GET", "/k8s/clusters/c1/apis/batch/v1/namespaces/myapp-dev/jobs/y"),
    ]


async def test_kube_api_sends_an_object_name_as_one_quoted_segment_of_the_path(
    serve: Serve, kube_api: StartKubeApi
) -> None:
    server = await serve(answering_empty_json)
    api = await kube_api(server.url)
    assert await api.get(Resource.CONFIGMAPS, "a b/../c\r\nX: y") == {}
    assert seen(server) == [
        (1, "GET", "/api/v1/namespaces/myapp-dev/configmaps/a%20b%2F..%2Fc%0D%0AX%3A%20y")
    ]
    assert "x" not in server.requests[0].headers


# -- on uvloop, the scheduler's event loop ------------------------------------------------------


def test_on_uvloop_a_retried_get_and_a_tunnelled_https_call_work(
    server_tls: ssl.SSLContext, trusting: ssl.SSLContext
) -> None:
    """The loop of the other tests is asyncio's; the scheduler runs on uvloop, whose transports
    and TLS are its own."""

    async def calls() -> None:
        async with HttpServer(closing_on_a_second_request) as server:
            plain = HttpPool(server.url, size=2, seconds=5, ssl_context=None)
            assert await plain.request("GET", "/a") == Answer(200, b"/a")
            assert await plain.request("GET", "/b") == Answer(200, b"/b")
            await plain.close()
            assert seen(server) == [(1, "GET", "/a"), (1, "GET", "/b"), (2, "GET", "/b")]
        async with HttpServer(ssl_context=server_tls) as server, ConnectProxy() as proxy:
            tunnelled = HttpPool(
                server.url, size=2, seconds=5, ssl_context=trusting, proxy=proxy.url
            )
            for _ in range(2):
                assert await tunnelled.request("GET", "/api") == Answer(200, b"ok")
            await tunnelled.close()
            assert seen(server) == [(1, "GET", "/api")] * 2

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(calls())
