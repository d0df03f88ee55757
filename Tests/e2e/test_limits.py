"""The proxy's limits and timeouts end to end: 431, 413, 504, an upstream answering before the upload ends,
and keep-alive connections to the upstream reused from the pool."""
import socket
import time

import pytest
import requests

from conftest import Detour, free_port, routes, wait_for


@pytest.fixture
def limited(tmp_path, provider, upstream):
    instance = Detour(tmp_path, provider, extra=routes(upstream, free_port()),
                      server='  max_request_body: "1MiB"\n  upstream_timeout: "1s"')
    wait_for(instance.url("/ready"))
    yield instance
    instance.stop()


def test_a_request_head_over_64_kib_is_431(limited):
    response = requests.get(limited.url("/sink"), headers={"X-Big": "a" * 70_000})
    assert response.status_code == 431
    assert requests.get(limited.url("/sink")).status_code == 200


def test_a_body_over_the_limit_is_413_from_its_content_length_before_the_upstream_sees_it(limited, upstream):
    before = requests.get(upstream + "/stats").json()["hits"].get("/sink", 0)
    response = requests.post(limited.url("/sink"), data=b"x" * (2 << 20))
    assert response.status_code == 413
    assert response.headers["Connection"] == "close"
    assert requests.get(upstream + "/stats").json()["hits"].get("/sink", 0) == before
    assert requests.post(limited.url("/sink"), data=b"x" * 1000).json() == {"received": 1000}


def test_a_chunked_body_over_the_limit_is_cut_with_413(limited):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536
    # Detour reads and drops the rest of the body before closing, so the client sees the 413.
    response = requests.post(limited.url("/sink"), data=chunks())
    assert response.status_code == 413
    assert response.headers["Connection"] == "close"
    small = requests.post(limited.url("/sink"), data=iter([b"x" * 1000, b"y" * 1000]))
    assert small.json() == {"received": 2000}


def test_an_upstream_slower_than_upstream_timeout_is_a_504_page(limited):
    response = requests.get(limited.url("/slow?ms=3000"))
    assert response.status_code == 504
    assert response.elapsed.total_seconds() < 2.5
    assert "did not answer in time" in response.text
    assert requests.get(limited.url("/slow?ms=10")).text == "slow"


def test_each_request_on_a_kept_alive_connection_gets_its_own_upstream_timeout(limited):
    """One timer per connection watches the deadlines: going off for an earlier request's deadline, it must
    neither cut a later request short nor let a slow one run past its own deadline."""
    with requests.Session() as client:
        assert client.get(limited.url("/slow?ms=500")).text == "slow"  # the timer now goes off 0.5 s from here
        assert client.get(limited.url("/slow?ms=700")).text == "slow"  # ...while this one still has 0.5 s
        response = client.get(limited.url("/slow?ms=2500"))
        assert response.status_code == 504
        assert 0.9 < response.elapsed.total_seconds() < 1.8
        assert client.get(limited.url("/slow?ms=10")).text == "slow"


def test_an_upstream_answering_before_the_upload_ends_is_passed_on_and_the_connection_closes(limited):
    with socket.create_connection(("127.0.0.1", limited.port)) as client:
        client.sendall(b"POST /early HTTP/1.1\r\nHost: localhost\r\nContent-Length: 900000\r\n\r\n" + b"x" * 65536)
        client.settimeout(5)
        answer = b""
        while b"too large for the upstream" not in answer:
            chunk = client.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 413")
        assert b"connection: close" in answer.lower()
        # The rest of the body is read and dropped; then Detour closes.
        client.sendall(b"x" * (900000 - 65536))
        while client.recv(65536):
            pass
    assert requests.get(limited.url("/sink")).status_code == 200


def test_upstream_connections_are_kept_alive_and_reused(limited, upstream):
    before = requests.get(upstream + "/stats").json()["connections"]
    with requests.Session() as session:
        for _ in range(20):
            assert session.get(limited.url("/sink")).status_code == 200
    after = requests.get(upstream + "/stats").json()["connections"]
    # Python's http.server closes nothing between requests here; one or two connections, never twenty.
    assert after - before <= 2, f"{after - before} new upstream connections for 20 requests"


@pytest.fixture
def guarded_limits(tmp_path, provider, upstream):
    """`server.limits` short enough to watch: what an unconfigured Detour does with its defaults, in seconds."""
    limits = ('  limits:\n    max_connections: 20\n    header_timeout: "1s"\n    body_timeout: "1s"\n'
              '    idle_timeout: "2s"\n    max_header_bytes: 8192')
    instance = Detour(tmp_path, provider, extra=routes(upstream, free_port()), server=limits)
    wait_for(instance.url("/ready"))
    yield instance
    instance.stop()


def closed_within(connection, seconds):
    """Whether the peer closes `connection` within `seconds` (bytes it sends first are read and returned)."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(4096):
            received += chunk
        return True, received
    except socket.timeout:
        return False, received


def test_slowloris_heads_are_cut_off_and_others_are_served_meanwhile(guarded_limits):
    """Issue 14.7: one client holding half-sent heads starved everyone. Each connection now has header_timeout to
    send its head whole, so the held ones close and a well-behaved client is served all along."""
    held = []
    for _ in range(15):
        connection = socket.create_connection(("127.0.0.1", guarded_limits.port))
        connection.sendall(b"GET /echo/public/x HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        held.append(connection)
    assert requests.get(guarded_limits.url("/echo/public/x"), timeout=2).status_code == 200
    for connection in held:
        closed, _ = closed_within(connection, 4)
        assert closed, "a head that never ends is cut off"
        connection.close()


def test_a_stalled_body_gets_408_and_an_idle_keep_alive_connection_closes(guarded_limits):
    with socket.create_connection(("127.0.0.1", guarded_limits.port)) as connection:
        connection.sendall(b"POST /echo/public/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nab")
        closed, received = closed_within(connection, 5)
        assert closed and received.startswith(b"HTTP/1.1 408"), received[:40]
    with socket.create_connection(("127.0.0.1", guarded_limits.port)) as connection:
        connection.sendall(b"GET /echo/public/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        closed, received = closed_within(connection, 6)
        assert closed and received.startswith(b"HTTP/1.1 200"), "answered, then closed when idle_timeout passed"
    with socket.create_connection(("127.0.0.1", guarded_limits.port)) as connection:
        # Answered from its head (row A1): the request's end, read after the answer, must not stop the idle clock.
        connection.sendall(b"GET /echo/page HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\n"
                           b"Sec-Fetch-Mode: navigate\r\n\r\n")
        closed, received = closed_within(connection, 6)
        assert closed and received.startswith(b"HTTP/1.1 302"), "sent to sign in, then closed when idle_timeout passed"
    with socket.create_connection(("127.0.0.1", guarded_limits.port)) as connection:
        connection.sendall(b"GET /echo/public/x HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        assert connection.recv(4096).startswith(b"HTTP/1.1 431"), "max_header_bytes is the configured 8192"


def test_past_max_connections_new_clients_wait_in_the_backlog_and_are_served_later(guarded_limits):
    held = [socket.create_connection(("127.0.0.1", guarded_limits.port)) for _ in range(20)]
    try:
        # Accepting pauses once the twentieth is open; connections the listener took in the same accept batch are
        # served (the limit holds to within one batch), so the next one arrives after that.
        time.sleep(0.3)
        waiting = socket.create_connection(("127.0.0.1", guarded_limits.port))  # the kernel's backlog takes it
        waiting.sendall(b"GET /echo/public/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        waiting.settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting.recv(4096)
        # The held connections send nothing: header_timeout closes them, and the waiting client is accepted.
        waiting.settimeout(5)
        assert waiting.recv(4096).startswith(b"HTTP/1.1 200")
        waiting.close()
        assert guarded_limits.process.poll() is None
    finally:
        for connection in held:
            connection.close()
