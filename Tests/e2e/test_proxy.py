"""The proxy end to end: Detour in front of a real upstream, real clients, every answer per the matrix."""
import contextlib
import json
import re
import socket
import subprocess
import threading

import requests

from conftest import query, signed_in


def echo(response):
    assert response.status_code == 200, response.text
    return response.json()


def test_a_signed_in_admin_reaches_the_upstream_with_identity_headers(proxy):
    session = signed_in(proxy)
    session.cookies.set("app_cookie", "kept")
    seen = echo(session.get(proxy.url("/echo/dashboard?x=1")))
    assert seen["path"] == "/echo/dashboard?x=1"
    headers = seen["headers"]
    assert headers["x-forwarded-user"] == "alice"
    assert headers["x-forwarded-email"] == "alice@example.com"
    assert headers["x-forwarded-groups"] == "admins,sre"
    assert headers["x-forwarded-preferred-username"] == "alice"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"localhost:{proxy.port}"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["cookie"] == "app_cookie=kept", "Detour's own cookies never reach the upstream"


def test_spoofed_identity_headers_are_removed_in_every_spelling(proxy):
    session = signed_in(proxy)
    spoofed = {"X-Forwarded-User": "root", "x-forwarded-email": "ceo@example.com", "X_Forwarded_Groups": "admins",
               "X-AUTH-REQUEST-USER": "root", "X-Forwarded-Access-Token": "forged"}
    seen = echo(session.get(proxy.url("/echo/x"), headers=spoofed))
    assert seen["headers"]["x-forwarded-user"] == "alice"
    assert seen["headers"]["x-forwarded-email"] == "alice@example.com"
    names = [name.lower().replace("_", "-") for name in seen["header_names"]]
    assert names.count("x-forwarded-user") == 1 and names.count("x-forwarded-groups") == 1
    assert "x-auth-request-user" not in names and "x-forwarded-access-token" not in names


def test_a_client_header_with_a_control_byte_is_refused_before_the_upstream(proxy, upstream):
    """The gateway checks only the header values Detour adds: the client's own were read by the request parser,
    which must refuse a bare CR or LF, a folded line and control bytes (400), never pass them upstream."""
    before = requests.get(upstream + "/stats").json()["hits"].get("/echo/public/raw", 0)
    for header in (b"X-A: one\rX-Split: yes", b"X-A: one\nX-Split: yes", b"X-A: one\r\n X-Split: yes",
                   b"X-A: one\x00two", b"X-A: one\x01two"):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
            client.sendall(b"GET /echo/public/raw HTTP/1.1\r\nHost: localhost\r\n" + header + b"\r\n\r\n")
            answer = client.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400"), (header, answer[:40])
    assert requests.get(upstream + "/stats").json()["hits"].get("/echo/public/raw", 0) == before


def test_anonymous_navigation_goes_to_the_provider_A1(proxy, provider):
    response = requests.get(proxy.url("/echo/x"), headers={"Sec-Fetch-Mode": "navigate"}, allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(provider + "/oauth2/authorize?")
    assert "_detour_state=" in response.headers["Set-Cookie"]


def test_anonymous_form_post_gets_303_to_start_A2(proxy):
    response = requests.post(proxy.url("/echo/form"), data={"a": "1"}, headers={"Accept": "text/html"},
                             allow_redirects=False)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(proxy.url("/oauth2/start?rd="))
    assert query(location)["rd"] == proxy.url("/echo/form")


def test_anonymous_fetch_gets_401_json_A3(proxy):
    response = requests.get(proxy.url("/echo/api"), headers={"Accept": "application/json"}, allow_redirects=False)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthenticated"


def test_a_cors_preflight_passes_unauthenticated_A4(proxy):
    response = requests.options(proxy.url("/echo/api"), headers={
        "Origin": "https://other.example", "Access-Control-Request-Method": "POST"}, allow_redirects=False)
    seen = echo(response)
    assert seen["method"] == "OPTIONS"
    assert "x-forwarded-user" not in seen["headers"]


def test_a_signed_in_user_outside_the_group_is_forbidden_A5(proxy):
    session = signed_in(proxy, subject="bob")
    response = session.get(proxy.url("/echo/x"), headers={"Accept": "text/html"}, allow_redirects=False)
    assert response.status_code == 403
    assert "Location" not in response.headers


def test_public_paths_need_no_sign_in(proxy):
    assert echo(requests.get(proxy.url("/echo/public/health")))["path"] == "/echo/public/health"


def test_upstream_redirects_keep_their_status_and_move_to_the_public_origin_U1(proxy):
    for status in (301, 302, 303, 307, 308):
        response = requests.get(proxy.url(f"/redirect-absolute/{status}"), allow_redirects=False)
        assert response.status_code == status
        assert response.headers["Location"] == proxy.url("/json?from=upstream")


def test_the_307_hop_is_re_sent_as_post_with_its_body_by_every_client(proxy):
    url = proxy.url("/v1/orders?dry=1")
    hop = requests.post(url, data="item=42", allow_redirects=False)
    assert hop.status_code == 307
    assert hop.headers["Location"] == proxy.url("/echo/v2/orders?dry=1")
    seen = echo(requests.post(url, data="item=42"))
    assert (seen["method"], seen["body"], seen["path"]) == ("POST", "item=42", "/echo/v2/orders?dry=1")
    curl = subprocess.run(["curl", "-s", "-L", "--data", "item=42", url], capture_output=True, text=True, check=True)
    seen = json.loads(curl.stdout)
    assert (seen["method"], seen["body"]) == ("POST", "item=42")
    node = subprocess.run(["node", "-e", f"""
        fetch({json.dumps(url)}, {{method: 'POST', body: 'item=42', redirect: 'follow'}})
          .then(r => r.json()).then(j => console.log(JSON.stringify(j)))"""], capture_output=True, text=True, check=True)
    seen = json.loads(node.stdout)
    assert (seen["method"], seen["body"]) == ("POST", "item=42")


def test_a_head_response_has_no_body_and_the_connections_go_on(proxy):
    """A response to HEAD gives the length of the body a GET would get, and no body: both the client's connection
    and the pooled upstream one must be read that way, or the next answer would be read as that body."""
    with requests.Session() as client:
        for _ in range(2):
            head = client.head(proxy.url("/echo/public/h"), timeout=5)
            assert head.status_code == 200 and int(head.headers["Content-Length"]) > 0 and head.content == b""
            got = client.get(proxy.url("/echo/public/h"), timeout=5)
            assert got.status_code == 200 and len(got.content) == int(got.headers["Content-Length"]) > 0
            assert got.json()["path"] == "/echo/public/h"


def test_pipelined_requests_are_answered_in_order(proxy):
    """Requests sent together on one connection (RFC 9112 9.3.2) are answered one after another, in order. Each
    next request starts while the previous response is still being read, on the upstream connection just freed;
    a HEAD among them must leave both connections readable."""
    requests_sent = [("GET", "/echo/public/1"), ("HEAD", "/echo/public/2"), ("GET", "/echo/public/3")]
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
        client.sendall(b"".join(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
                                for method, path in requests_sent))
        received = b""
        answers = []
        while len(answers) < len(requests_sent):
            head_end = received.find(b"\r\n\r\n")
            if head_end < 0:
                chunk = client.recv(65536)
                assert chunk, (answers, received)
                received += chunk
                continue
            head = received[:head_end].decode()
            length = int(re.search(r"(?im)^content-length: *(\d+)", head).group(1))
            if requests_sent[len(answers)][0] == "HEAD":
                length = 0
            if len(received) < head_end + 4 + length:
                received += client.recv(65536)
                continue
            answers.append((head.split(" ")[1], received[head_end + 4:head_end + 4 + length]))
            received = received[head_end + 4 + length:]
    assert [status for status, _ in answers] == ["200", "200", "200"]
    assert json.loads(answers[0][1])["path"] == "/echo/public/1" and answers[1][1] == b""
    assert json.loads(answers[2][1])["path"] == "/echo/public/3"


def test_an_unreachable_upstream_is_a_502_page(proxy):
    response = requests.get(proxy.url("/down/x"))
    assert response.status_code == 502
    assert proxy.process.poll() is None


def test_large_downloads_stream_through(proxy):
    response = requests.get(proxy.url("/big?bytes=20000000"))
    assert response.status_code == 200
    assert len(response.content) == 20_000_000


def test_bad_paths_are_refused_before_routing(proxy):
    # curl --path-as-is sends the bytes as written (requests would normalise them first).
    for path in ["/echo/public/%2e%2e/x", "/echo/public%2f..%2fx", "/echo/public/..;/x", "/echo/public/%2E./x"]:
        status = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", proxy.url(path)],
                                capture_output=True, text=True, check=True).stdout
        assert status == "400", path
    status = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is",
                             "-H", "Accept: application/json", proxy.url("/echo/public/../x")],
                            capture_output=True, text=True, check=True).stdout
    assert status == "401", "a plain dot segment is resolved, and /echo/x is protected"


def test_metrics_count_requests_redirects_sign_ins_and_provider_calls(proxy):
    session = signed_in(proxy)
    session.get(proxy.url("/echo/x"))
    requests.get(proxy.url("/echo/x"), headers={"Accept": "application/json"})
    text = requests.get(proxy.url("/metrics")).text
    assert 'detour_requests_total{route="app",decision="proxied",status="200"}' in text
    assert 'detour_requests_total{route="app",decision="A3",status="401"}' in text
    assert 'detour_redirects_total{status="303"}' in text
    assert 'detour_sign_ins_total{result="success"}' in text
    assert 'detour_provider_call_duration_seconds_bucket{endpoint="token"' in text
    assert session.cookies.get("_detour") not in text, "no cookie or token in metrics"


def peak_rss_mib(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def test_large_bodies_stream_both_ways_with_flat_memory(proxy):
    size = 256 * 1024 * 1024
    before = peak_rss_mib(proxy.process.pid)
    received = 0
    with requests.get(proxy.url(f"/big?bytes={size}"), stream=True) as response:
        for chunk in response.iter_content(1 << 20):
            received += len(chunk)
    assert received == size

    class Body:
        """A sized stream: requests sends Content-Length and reads it in blocks (a generator would make it
        send Transfer-Encoding: chunked beside Content-Length, which Detour rightly refuses as ambiguous)."""

        def __init__(self):
            self.left = size

        def read(self, count=-1):
            count = self.left if count < 0 else min(count, self.left)
            self.left -= count
            return b"y" * count

        def __len__(self):
            return self.left

    answer = requests.post(proxy.url("/sink"), data=Body())
    assert answer.json() == {"received": size}
    growth = peak_rss_mib(proxy.process.pid) - before
    assert growth < 64, f"peak RSS grew by {growth:.0f} MiB while 2 x 256 MiB passed through"


def test_websockets_pass_through_once_the_request_is_allowed(proxy):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    session = signed_in(proxy)
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    url = f"ws://localhost:{proxy.port}/ws/echo"
    with connect(url, additional_headers={"Cookie": cookie}) as socket:
        socket.send("hello through Detour")
        assert socket.recv(timeout=5) == "hello through Detour"
        socket.send(b"\x00\x01binary")
        assert socket.recv(timeout=5) == b"\x00\x01binary"
        large = "x" * 200_000
        socket.send(large)
        assert socket.recv(timeout=5) == large
    try:
        connect(url, open_timeout=5)
        raise AssertionError("an anonymous upgrade must be refused")
    except InvalidStatus as refused:
        assert refused.response.status_code == 401


def test_a_claim_with_a_line_break_never_becomes_an_injected_upstream_header(tmp_path, upstream):
    """Section 7: identity headers come from claims, which a user may be able to edit at the provider."""
    from conftest import Detour, free_port, routes, start_mock_provider, wait_for
    claims = '{"sub": "mallory", "email": "m@example.com\\r\\nX-Injected: yes", "groups": ["admins"]}'
    issuer, provider = start_mock_provider("--user-claims", claims)
    detour = Detour(tmp_path, issuer, extra=routes(upstream, free_port()))
    try:
        wait_for(detour.url("/ready"))
        mallory = signed_in(detour, subject="mallory")
        before = requests.get(upstream + "/stats").json()["hits"].get("/echo/private", 0)
        response = mallory.get(detour.url("/echo/private"), headers={"Accept": "application/json"})
        assert response.status_code == 502  # refused before it is written, not split
        assert requests.get(upstream + "/stats").json()["hits"].get("/echo/private", 0) == before
        # Forward-auth hands the same claims to nginx as X-Auth-Request-* headers: a 502 page, not a split header.
        answer = mallory.get(detour.url("/oauth2/auth"))
        assert answer.status_code == 502
        assert "X-Injected" not in answer.headers
        assert detour.process.poll() is None
        assert requests.get(detour.url("/echo/public/x")).status_code == 200
    finally:
        detour.stop()
        provider.terminate()
        provider.wait()


@contextlib.contextmanager
def in_front_of_a_raw_upstream(tmp_path, provider, answer):
    """Detour, every path public, in front of a raw TCP upstream that calls `answer(connection)` for each connection
    it accepts: for answers no well-behaved server library would write."""
    from conftest import Detour, wait_for
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            connection, _ = listener.accept()
            with connection:
                answer(connection)

    threading.Thread(target=serve, daemon=True).start()
    extra = f"""
routes:
  - name: raw
    match: {{ host: "localhost" }}
    upstream: "http://127.0.0.1:{listener.getsockname()[1]}"
    public: ["/"]
"""
    detour = Detour(tmp_path, provider, extra=extra)
    try:
        wait_for(detour.url("/ready"))
        yield detour
    finally:
        detour.stop()
        listener.close()


def request_head(connection):
    head = b""
    while b"\r\n\r\n" not in head:
        head += connection.recv(65536)
    return head


def test_an_upstream_header_with_a_control_byte_never_reaches_the_client(tmp_path, provider):
    """Detour writes the upstream's headers as the response parser read them, with no second check on the way
    out: the parser must refuse a bare CR or LF, a folded line and control bytes (a 502), never pass them on."""
    answers = {
        b"/ok": b"X-A: one\r\n",
        b"/bare-cr": b"X-A: one\rX-Split: yes\r\n",
        b"/bare-lf": b"X-A: one\nX-Split: yes\r\n",
        b"/folded": b"X-A: one\r\n X-Split: yes\r\n",
        b"/nul": b"X-A: one\x00X-Split: yes\r\n",
    }

    def answer(connection):
        headers = answers.get(request_head(connection).split(b" ")[1], b"")
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n" + headers + b"\r\nok")

    with in_front_of_a_raw_upstream(tmp_path, provider, answer) as detour:
        ok = requests.get(detour.url("/ok"))
        assert (ok.status_code, ok.headers["X-A"], ok.text) == (200, "one", "ok")
        for path in ("/bare-cr", "/bare-lf", "/folded", "/nul"):
            response = requests.get(detour.url(path))
            assert response.status_code == 502, path
            assert "X-Split" not in response.headers, path


def test_every_request_body_reaches_the_upstream_framed(tmp_path, provider):
    """A body sent on without its framing is read by the upstream as the next request: smuggled past the policy.
    Transfer-Encoding is hop-by-hop, so Detour frames a chunked body itself, whatever the method (a GET or DELETE
    may carry one); a Transfer_Encoding spelling frames nothing; and no client can make Content-Length
    hop-by-hop by naming it in Connection."""
    received = []
    answer = recording(received)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    with in_front_of_a_raw_upstream(tmp_path, provider, answer) as detour:

        def forwarded(request):
            """The head (lower case) and body the upstream received for one raw request."""
            received.clear()
            with socket.create_connection(("127.0.0.1", detour.port), timeout=5) as client:
                client.sendall(request)
                assert client.recv(65536).startswith(b"HTTP/1.1 200"), request
            head, _, body = received[0].partition(b"\r\n\r\n")
            return head.lower(), body

        chunked = f"{len(smuggled):x}\r\n".encode() + smuggled + b"\r\n0\r\n\r\n"
        for method in (b"GET", b"DELETE", b"POST"):
            head, body = forwarded(method + b" /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
            assert b"transfer-encoding: chunked" in head, (method, head)
            assert body == chunked, (method, body)
        # Transfer_Encoding is not the framing header, and Connection cannot make the length hop-by-hop: these bodies
        # are framed by their length, and only by it, upstream.
        for header in (b"Transfer_Encoding: chunked", b"Connection: keep-alive, Content-Length"):
            head, body = forwarded(b"POST /x HTTP/1.1\r\nHost: localhost\r\n" + header + b"\r\n"
                                   + f"Content-Length: {len(smuggled)}\r\n\r\n".encode() + smuggled)
            assert b"transfer" not in head and f"content-length: {len(smuggled)}".encode() in head, (header, head)
            assert body == smuggled, header
        # A coding other than a final chunked cannot be framed: refused by the parser, never sent upstream.
        received.clear()
        with socket.create_connection(("127.0.0.1", detour.port), timeout=5) as client:
            client.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n" + smuggled)
            assert client.recv(65536).startswith(b"HTTP/1.1 400")
        assert received == []


def test_a_body_of_unknown_length_reaches_every_client_with_an_end_it_can_find(tmp_path, provider):
    """Detour frames what it writes. A response whose length the upstream did not give (sent chunked, or ended by
    closing) goes chunked to an HTTP/1.1 client, whose connection stays usable. HTTP/1.0 has no chunked coding:
    there the body ends with the connection, even when the client asked for keep-alive."""

    def answer(connection):
        request = request_head(connection)
        if b"/chunked" in request:
            connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        elif b"/until-close" in request:
            connection.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello world")
        else:
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")

    with in_front_of_a_raw_upstream(tmp_path, provider, answer) as detour:
        with socket.create_connection(("127.0.0.1", detour.port), timeout=5) as client:
            client.sendall(b"GET /sized HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
            reply = client.recv(65536)
            assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"\r\n\r\nhello"), reply
            assert b"keep-alive" in reply.lower()
            client.sendall(b"GET /chunked HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
            reply = b""
            while chunk := client.recv(65536):  # ends when Detour closes; a timeout here fails the test
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200"), head
        assert b"transfer-encoding" not in head.lower() and b"connection: close" in head.lower(), head
        assert body == b"hello world"
        with requests.Session() as client:  # HTTP/1.1, one kept-alive connection
            for path in ("/until-close", "/chunked", "/until-close"):
                response = client.get(detour.url(path))
                assert (response.status_code, response.text) == (200, "hello world"), path
                assert response.headers["Transfer-Encoding"] == "chunked", path
                assert "close" not in response.headers.get("Connection", ""), path


def recording(received):
    """A raw upstream's answer that reads each whole request (its head, and a body framed by Content-Length or
    chunked, trailers included), appends its bytes to `received`, and answers a small 200."""
    def whole(data):
        head, separator, body = data.partition(b"\r\n\r\n")
        fields = head.lower().split(b"\r\n")
        if not separator:
            return False
        if any(field.startswith(b"transfer-encoding:") and b"chunked" in field for field in fields):
            return body.endswith(b"\r\n\r\n") and (body.startswith(b"0\r\n") or b"\r\n0\r\n" in body)
        lengths = [int(field.split(b":")[1]) for field in fields if field.startswith(b"content-length:")]
        return len(body) >= (lengths[0] if lengths else 0)

    def answer(connection):
        data = b""
        connection.settimeout(1)
        try:
            while not whole(data) and (chunk := connection.recv(65536)):
                data += chunk
        except socket.timeout:
            pass
        received.append(data)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    return answer


def answering(response):
    """A raw upstream's answer to every connection: read the request head, send `response` as it is."""
    def answer(connection):
        request_head(connection)
        connection.sendall(response)
    return answer


def exchange(detour, request, until):
    """Sends raw `request` bytes to Detour on a new connection; returns the reply, read up to `until`."""
    with socket.create_connection(("127.0.0.1", detour.port), timeout=5) as client:
        client.sendall(request)
        reply = b""
        while not reply.endswith(until):
            chunk = client.recv(65536)
            assert chunk, reply  # closed before the end
            reply += chunk
        return reply


def test_interim_responses_reach_http11_clients_without_hop_by_hop_headers(tmp_path, provider):
    """A 103 Early Hints is passed on to HTTP/1.1 clients before the final answer, less the headers that were only
    for the hop between Detour and the upstream; an HTTP/1.0 client, which cannot read one, gets the final answer
    alone."""

    answer = answering(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\nConnection: X-Hop\r\n"
                       b"X-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n"
                       b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    with in_front_of_a_raw_upstream(tmp_path, provider, answer) as detour:
        reply = exchange(detour, b"GET /hints HTTP/1.1\r\nHost: localhost\r\n\r\n", until=b"\r\n\r\nok")
        interim, _, final = reply.partition(b"\r\n\r\n")
        status_line, *fields = interim.split(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 103 ") and fields == [b"Link: </app.css>; rel=preload"], interim
        assert final.startswith(b"HTTP/1.1 200 OK\r\n"), final
        reply = exchange(detour, b"GET /hints HTTP/1.0\r\nHost: localhost\r\n\r\n", until=b"\r\n\r\nok")
        assert reply.startswith(b"HTTP/1.0 200 OK\r\n") and b"103" not in reply, reply


def test_a_chunked_response_reaches_the_client_with_its_trailers(tmp_path, provider):
    """Detour re-frames a chunked body itself; the upstream's trailers follow its last chunk."""

    answer = answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n"
                       b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 42\r\n\r\n")
    with in_front_of_a_raw_upstream(tmp_path, provider, answer) as detour:
        reply = exchange(detour, b"GET /trailers HTTP/1.1\r\nHost: localhost\r\n\r\n",
                         until=b"0\r\nX-Checksum: 42\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower(), head
        assert body == b"5\r\nhello\r\n0\r\nX-Checksum: 42\r\n\r\n", body


def test_a_websocket_upgrade_with_a_body_is_refused_before_the_upstream(tmp_path, provider):
    """An opening handshake has no body (RFC 6455 4.1). One that announces a body is a 400, and the upstream never
    hears of it: sent on, it would say `chunked` or give a length, with nothing following."""
    asked = []

    def answer(connection):
        asked.append(request_head(connection))
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    upgrade = (b"GET /socket HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    with in_front_of_a_raw_upstream(tmp_path, provider, answer) as detour:
        for framing in (b"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", b"Content-Length: 2\r\n\r\nhi"):
            with socket.create_connection(("127.0.0.1", detour.port), timeout=5) as client:
                client.sendall(upgrade + framing)
                reply = b""
                while chunk := client.recv(65536):  # Detour closes after its answer
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 400 "), reply
            assert b"connection: close" in reply.lower(), reply
        assert asked == []
        assert requests.get(detour.url("/after")).text == "ok"  # the raw upstream is reachable: asked is meaningful
