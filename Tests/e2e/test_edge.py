"""Detour as the TLS and HTTP/2 edge (`server.tls`, `server.http_listen`, `server.hsts`), end to end: `detour serve`
over https with certificates made by openssl, the real OpenID provider, the echoing upstream fixture, and real
clients (curl over HTTP/2 and HTTP/1.1, requests, the h2 package, raw frames written with hyperframe and hpack as an
attacker writes them, headless Chromium). It proves that both protocols take the same decisions, that sessions are
Secure cookies, that the plain listener only redirects, that SIGHUP swaps the certificate (and refuses a broken
pair), that bad files stop the start, that floods end the attacking connection and nothing else, and that a large
upload streams through in bounded memory."""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlparse

import h2.config
import h2.connection
import h2.events
import hpack
import pytest
import requests
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame)

from browser import DevTools, chromium_devtools, trusting_home
from conftest import DETOUR, free_port, query, routes, sign_in_at_provider

PROTOCOL_ERROR, CANCEL, ENHANCE_YOUR_CALM = 0x1, 0x8, 0xB
MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE = 0x3, 0x6
YEAR = "max-age=31536000"


def openssl(*arguments, cwd):
    subprocess.run(["openssl", *arguments], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA; certificates for localhost it signed: `first` (ECDSA), `second` (RSA, another key), `expired`."""
    folder = tmp_path_factory.mktemp("edge-pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=Detour edge test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    (folder / "localhost.ext").write_text("subjectAltName=DNS:localhost\n")
    for name, key, days in (("first", ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"], "2"),
                            ("second", ["rsa:2048"], "2"),
                            ("expired", ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"], "-1")):
        openssl("req", "-newkey", *key, "-nodes", "-subj", "/CN=localhost", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=folder)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", days, "-extfile", "localhost.ext", "-out", f"{name}.pem", cwd=folder)
    return folder


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def file_fingerprint(pem):
    return fingerprint(ssl.PEM_cert_to_DER_cert(pem.read_text()))


def install(pki, certificate, key, folder):
    """Puts a pair where the edge's configuration names it: edge.pem and edge.key beside the config file."""
    shutil.copy(pki / f"{certificate}.pem", folder / "edge.pem")
    shutil.copy(pki / f"{key}.key", folder / "edge.key")


TLS = '  tls: { cert_file: "edge.pem", key_file: "edge.key" }\n'


@pytest.fixture
def serve_tls(make_detour, tmp_path, pki, upstream):
    """Starts `detour serve` over https with the `first` pair, named relative to its config file."""

    def serve(server="", extra=None):
        install(pki, "first", "first", tmp_path)
        return make_detour(tls=pki / "ca.pem", server=TLS + server,
                           extra=extra if extra is not None else routes(upstream, free_port()))

    return serve


@pytest.fixture
def edge(serve_tls):
    return serve_tls()


def log_of(detour):
    return detour.log_path.read_text()


def wait_for_log(detour, pattern, count=1, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = re.findall(pattern, log_of(detour), re.MULTILINE)
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in the log:\n{log_of(detour)}")


class Answer(NamedTuple):
    version: str
    status: int
    headers: dict
    body: str

    def header(self, name):
        values = self.headers.get(name.lower(), [])
        assert len(values) <= 1, (name, values)
        return values[0] if values else None


MARK = "\n=curl-write-out=\n"


def curl(url, *options, ca):
    """One curl run: the last response's protocol version, status, headers (lower-case names, lists) and body."""
    done = subprocess.run(["curl", "-sS", "--noproxy", "*", "--cacert", str(ca), "-w",
                           MARK + "%{json}" + MARK + "%{header_json}", *options, url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    body, info, headers = done.stdout.split(MARK)
    info = json.loads(info)
    return Answer(info["http_version"], info["response_code"], json.loads(headers), body)


def https_session(ca):
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment replaces `verify`
    session.verify = str(ca)
    return session


def tls_socket(port, ca, alpn=("h2", "http/1.1"), timeout=10):
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(list(alpn))
    return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=timeout),
                               server_hostname="localhost")


def seen_certificate(port, ca):
    with tls_socket(port, ca) as connection:
        return fingerprint(connection.getpeercert(binary_form=True))


class H2Client:
    """A well-behaved HTTP/2 client: the h2 package over one TLS connection (ALPN h2)."""

    def __init__(self, detour, ca):
        self.authority = f"localhost:{detour.port}"
        self.socket = tls_socket(detour.port, ca, alpn=("h2",))
        assert self.socket.selected_alpn_protocol() == "h2"
        self.connection = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.connection.initiate_connection()
        self.socket.sendall(self.connection.data_to_send())

    def request(self, path, method="GET", headers=(), body=None):
        """(status, response headers as a dict, body)."""
        stream = self.connection.get_next_available_stream_id()
        self.connection.send_headers(stream, [(":method", method), (":scheme", "https"),
                                              (":authority", self.authority), (":path", path), *headers],
                                     end_stream=body is None)
        if body is not None:
            self.connection.send_data(stream, body, end_stream=True)
        self.socket.sendall(self.connection.data_to_send())
        fields, received = {}, b""
        while True:
            data = self.socket.recv(65536)
            assert data, "the connection closed before the response ended"
            for event in self.connection.receive_data(data):
                if getattr(event, "stream_id", stream) != stream:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    fields = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    received += event.data
                    self.connection.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise AssertionError(f"stream {stream} ended by {event}")
                elif isinstance(event, h2.events.StreamEnded):
                    self.socket.sendall(self.connection.data_to_send())
                    return int(fields[":status"]), fields, received
            self.socket.sendall(self.connection.data_to_send())

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.socket.close()


def h2_get(detour, ca, path, headers=()):
    with H2Client(detour, ca) as client:
        return client.request(path, headers=headers)


class Attacker:
    """An HTTP/2 client that writes frames exactly as given (hyperframe, hpack), whatever the protocol says, and
    reads every frame Detour sends back."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, detour, ca):
        self.authority = f"localhost:{detour.port}"
        self.socket = tls_socket(detour.port, ca, alpn=("h2",))
        assert self.socket.selected_alpn_protocol() == "h2"
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.pending, self.frames, self.closed = b"", [], False
        self.send(self.PREFACE + SettingsFrame(0).serialize())

    def block(self, path, method="GET", extra=()):
        return self.encoder.encode([(":method", method), (":scheme", "https"), (":authority", self.authority),
                                    (":path", path), *extra])

    def headers(self, stream, path, method="GET", end_stream=True, extra=()):
        frame = HeadersFrame(stream, data=self.block(path, method, extra), flags=["END_HEADERS"])
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame.serialize()

    def send(self, data):
        try:
            self.socket.sendall(data)
        except OSError:
            self.closed = True

    def read(self, until=lambda frame: False, timeout=5.0):
        """Reads frames into `self.frames` until one satisfies `until` (returned), the peer closes, or time is up."""
        deadline = time.time() + timeout
        while not self.closed and time.time() < deadline:
            self.socket.settimeout(max(0.01, deadline - time.time()))
            try:
                data = self.socket.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            self.pending += data
            while len(self.pending) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.pending[:9]))
                if len(self.pending) < 9 + length:
                    break
                frame.parse_body(memoryview(self.pending[9:9 + length]))
                self.pending = self.pending[9 + length:]
                if isinstance(frame, HeadersFrame):
                    frame.fields = self.decoder.decode(frame.data)
                self.frames.append(frame)
                if until(frame):
                    return frame
        return None

    def goaway(self, timeout=5.0):
        frame = self.read(lambda f: isinstance(f, GoAwayFrame), timeout)
        assert frame is not None, f"no GOAWAY: {self.frames[-5:]}, closed={self.closed}"
        return frame

    def of(self, kind, stream=None):
        return [f for f in self.frames if isinstance(f, kind) and (stream is None or f.stream_id == stream)]

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.socket.close()


def assert_ended_by_goaway(attacker, error_code, edge, ca, upstream, probe):
    """The connection got GOAWAY with `error_code`, serves nothing more, and a fresh client is served."""
    goaway = attacker.goaway()
    assert goaway.error_code == error_code, goaway
    attacker.send(attacker.headers(10001, probe))
    attacker.read(timeout=1)
    assert not attacker.of(HeadersFrame, 10001), "a stream opened after GOAWAY was served"
    status, _, body = h2_get(edge, ca, "/echo/public/fresh")
    assert status == 200 and json.loads(body)["path"] == "/echo/public/fresh"
    assert requests.get(upstream + "/stats").json()["hits"].get(probe) is None


def without_random(location):
    """An authorize URL without what each sign-in makes anew."""
    parsed = urlparse(location)
    kept = {k: v for k, v in query(location).items() if k not in ("state", "nonce", "code_challenge")}
    return parsed.scheme, parsed.netloc, parsed.path, kept


def test_http2_and_http1_take_the_same_decisions_with_hsts(edge, pki, provider):
    ca = pki / "ca.pem"
    browser = ("-H", "Accept: text/html", "-H", "Sec-Fetch-Mode: navigate")
    rows = {
        "anonymous navigation": (edge.url("/echo/page?x=1"), *browser),
        "anonymous API call": (edge.url("/echo/api"),),
        "anonymous form post": (edge.url("/echo/form"), "-H", "Accept: text/html", "--data", "a=1"),
        "public path": (edge.url("/echo/public/page?y=2"),),
        "own endpoint": (edge.url("/ping"),),
        "no route": (f"https://localhost:{edge.port}/", "-H", "Host: elsewhere.example"),
        "dead upstream": (edge.url("/down/x"),),
    }
    seen = {}
    for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
        for row, (url, *options) in rows.items():
            answer = curl(url, flag, *options, ca=ca)
            assert answer.version == version, (row, answer)
            assert answer.header("Strict-Transport-Security") == YEAR, (row, answer.headers)
            seen[row, version] = answer
    for row in rows:
        one, two = seen[row, "1.1"], seen[row, "2"]
        assert one.status == two.status, (row, one, two)
    navigation = seen["anonymous navigation", "2"]
    assert navigation.status == 302
    assert navigation.header("Location").startswith(provider + "/oauth2/authorize?")
    assert query(navigation.header("Location"))["redirect_uri"] == edge.url("/oauth2/callback")
    assert without_random(navigation.header("Location")) == without_random(
        seen["anonymous navigation", "1.1"].header("Location"))
    for version in ("1.1", "2"):
        api = seen["anonymous API call", version]
        assert api.status == 401 and api.header("WWW-Authenticate") == "Bearer", api
        form = seen["anonymous form post", version]
        assert form.status == 303, form
        assert query(form.header("Location"))["rd"] == edge.url("/echo/form")
        public = json.loads(seen["public path", version].body)
        assert seen["public path", version].status == 200
        assert public["path"] == "/echo/public/page?y=2"
        assert public["headers"]["x-forwarded-proto"] == "https"
        assert public["headers"]["x-forwarded-host"] == f"localhost:{edge.port}"
        assert seen["own endpoint", version].body == "OK"
    assert seen["anonymous form post", "2"].header("Location") == seen["anonymous form post", "1.1"].header("Location")
    assert seen["no route", "2"].status == 404 and seen["dead upstream", "2"].status == 502


def test_a_signed_out_navigation_with_a_large_body_is_sent_to_sign_in_at_once(edge, pki, provider, tmp_path):
    """Row A1 is decided from the head: a body the request carries is not read first, so it is never a 413 for
    Detour's own endpoints' 64 KiB limit."""
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"x" * (1 << 20))
    for flag in ("--http2", "--http1.1"):
        answer = curl(edge.url("/echo/page"), flag, "-X", "GET", "-H", "Accept: text/html", "-H",
                      "Sec-Fetch-Mode: navigate", "--data-binary", f"@{upload}", ca=pki / "ca.pem")
        assert answer.status == 302, (flag, answer)
        assert answer.header("Location").startswith(provider + "/oauth2/authorize?"), answer


def test_tls_is_1_2_or_1_3_and_alpn_offers_h2_then_http1(edge, pki):
    ca = pki / "ca.pem"
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = ssl.create_default_context(cafile=str(ca))
        context.minimum_version = context.maximum_version = version
        context.set_alpn_protocols(["h2", "http/1.1"])
        with context.wrap_socket(socket.create_connection(("127.0.0.1", edge.port)),
                                 server_hostname="localhost") as connection:
            assert connection.selected_alpn_protocol() == "h2", version
    with tls_socket(edge.port, ca, alpn=("http/1.1",)) as connection:
        assert connection.selected_alpn_protocol() == "http/1.1"
    with tls_socket(edge.port, ca, alpn=()) as connection:  # no ALPN at all: HTTP/1.1
        connection.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert connection.recv(4096).startswith(b"HTTP/1.1 200 OK")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.create_default_context(cafile=str(ca))
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):  # the server's alert, not the client's refusal
        old.wrap_socket(socket.create_connection(("127.0.0.1", edge.port)), server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as plain:
        plain.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert b"200 OK" not in plain.recv(4096), "plain HTTP on the TLS port is never served"


@pytest.mark.parametrize("head, status", [
    (b"GET /echo/public/x HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n", b"431"),
    (b"GET /echo/public/x HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n", b"400")])
def test_refusals_of_unparsable_http1_heads_over_tls_carry_hsts_too(edge, pki, head, status):
    with tls_socket(edge.port, pki / "ca.pem", alpn=("http/1.1",)) as connection:
        connection.sendall(head)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := connection.recv(4096)):
            received += chunk
    assert received.startswith(b"HTTP/1.1 " + status), received[:60]
    assert f"strict-transport-security: {YEAR}".encode() in received.lower(), received


def test_sign_in_over_https_sets_secure_host_cookies_usable_over_both_protocols(edge, pki):
    ca = pki / "ca.pem"
    session = https_session(ca)
    started = session.get(edge.url("/oauth2/start"), params={"rd": edge.url("/echo/app?x=1")}, allow_redirects=False)
    assert started.status_code == 302
    state, browser = started.raw.headers.getlist("Set-Cookie")
    for cookie, name in ((state, "__Host-_detour_state="), (browser, "__Host-_detour_browser=")):
        assert cookie.startswith(name)
        assert "; Secure" in cookie and "HttpOnly" in cookie and "Path=/;" in cookie and "Domain=" not in cookie
    callback = sign_in_at_provider(session, started.headers["Location"])
    assert callback.startswith(edge.url("/oauth2/callback?"))
    done = session.get(callback, allow_redirects=False)
    assert done.status_code == 303 and done.headers["Location"] == edge.url("/echo/app?x=1")
    assert done.headers["Strict-Transport-Security"] == YEAR
    cookies = done.raw.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("__Host-_detour="))
    assert "; Secure" in session_cookie and "HttpOnly" in session_cookie and "Domain=" not in session_cookie
    assert all("; Secure" in c for c in cookies), cookies
    page = session.get(edge.url("/echo/app?x=1"))
    assert page.status_code == 200
    seen = page.json()
    assert seen["headers"]["x-forwarded-user"] == "alice"
    assert seen["headers"]["x-forwarded-groups"] == "admins,sre"
    assert seen["headers"]["x-forwarded-proto"] == "https"
    assert "cookie" not in seen["headers"], "Detour's cookies never reach the upstream"
    value = session.cookies.get("__Host-_detour")
    for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
        answer = curl(edge.url("/echo/app?over=curl"), flag, "-b", f"__Host-_detour={value}", ca=ca)
        assert answer.version == version and answer.status == 200, answer
        assert json.loads(answer.body)["headers"]["x-forwarded-user"] == "alice"
    # HTTP/2 may split Cookie into crumbs (RFC 9113 8.2.3): the session is still read, the app's cookie kept alone.
    status, _, body = h2_get(edge, ca, "/echo/app?over=crumbs",
                             headers=[("cookie", "app_cookie=kept"), ("cookie", f"__Host-_detour={value}")])
    assert status == 200
    seen = json.loads(body)["headers"]
    assert seen["x-forwarded-user"] == "alice" and seen["cookie"] == "app_cookie=kept"
    me = session.get(edge.url("/oauth2/userinfo"))
    assert me.status_code == 200 and me.json()["user"] == "alice"
    out = session.get(edge.url("/oauth2/sign_out"), allow_redirects=False)
    assert out.status_code == 303
    assert any(c.startswith("__Host-_detour=;") and "Max-Age=0" in c and "; Secure" in c
               for c in out.raw.headers.getlist("Set-Cookie"))


def test_the_plain_listener_only_redirects_to_https(serve_tls, pki, upstream):
    ca = pki / "ca.pem"
    plain_port = free_port()
    edge = serve_tls(server=f'  http_listen: "127.0.0.1:{plain_port}"\n')
    plain = f"http://localhost:{plain_port}"
    asked = (("GET", "/echo/plain-get?a=1&b=%2F", None), ("POST", "/echo/public/plain-form?k=v", b"a=1&b=2"),
             ("PUT", "/echo/public/plain-put", b"{}"), ("DELETE", "/echo/public/plain-item/7?hard=1", None),
             ("GET", "/oauth2/start?rd=/x", None), ("GET", "/ping", None))
    for method, path, body in asked:
        answer = requests.request(method, plain + path, data=body, allow_redirects=False)
        assert answer.status_code == 308, (method, path, answer.status_code, answer.text)
        assert answer.headers["Location"] == edge.url(path), (method, path)
        assert "Set-Cookie" not in answer.headers
        assert "Strict-Transport-Security" not in answer.headers, "HSTS over plain http is ignored (RFC 6797 7.2)"
    hits = requests.get(upstream + "/stats").json()["hits"]
    assert not [path for _, path, _ in asked if urlparse(path).path in hits], "nothing is proxied from it"
    followed = curl(plain + "/echo/public/z?k=v", "-L", ca=ca)
    assert followed.version == "2" and followed.status == 200
    assert json.loads(followed.body)["path"] == "/echo/public/z?k=v"
    assert followed.header("Strict-Transport-Security") == YEAR
    posted = curl(plain + "/echo/public/form", "-L", "--data", "a=1", ca=ca)
    echoed = json.loads(posted.body)
    assert (echoed["method"], echoed["body"]) == ("POST", "a=1"), "a 308 keeps the method and the body"
    log = log_of(edge)
    assert f"address=127.0.0.1:{plain_port}" in log and "redirecting plain http to https" in log


def test_the_plain_listener_redirects_a_large_upload_too(serve_tls):
    plain_port = free_port()
    edge = serve_tls(server=f'  http_listen: "127.0.0.1:{plain_port}"\n')
    answer = requests.post(f"http://localhost:{plain_port}/sink?n=1", data=b"x" * (1 << 20), allow_redirects=False)
    assert answer.status_code == 308, (answer.status_code, answer.text)
    assert answer.headers["Location"] == edge.url("/sink?n=1")


class OwnHSTS(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Strict-Transport-Security", "max-age=60; includeSubDomains")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_hsts_is_configurable_off_and_an_upstreams_own_is_passed(serve_tls, pki, upstream):
    ca = pki / "ca.pem"
    own = ThreadingHTTPServer(("127.0.0.1", 0), OwnHSTS)
    threading.Thread(target=own.serve_forever, daemon=True).start()
    try:
        extra = f"""
routes:
  - name: own
    match: {{ host: "localhost", path: "/own/" }}
    upstream: "http://127.0.0.1:{own.server_address[1]}"
    public: ["/own/"]
  - name: app
    match: {{ host: "localhost" }}
    upstream: "{upstream}"
    public: ["/echo/public/"]
"""
        hour = serve_tls(server='  hsts: "1h"\n', extra=extra)
        off = serve_tls(server='  hsts: "0s"\n', extra=extra)
        for flag in ("--http2", "--http1.1"):
            for path in ("/echo/public/a", "/ping", "/echo/private"):
                assert curl(hour.url(path), flag, ca=ca).headers["strict-transport-security"] == ["max-age=3600"]
                assert "strict-transport-security" not in curl(off.url(path), flag, ca=ca).headers
            for detour in (hour, off):
                answer = curl(detour.url("/own/x"), flag, ca=ca)
                assert answer.status == 200
                assert answer.headers["strict-transport-security"] == ["max-age=60; includeSubDomains"], \
                    "the upstream's own header, alone"
    finally:
        own.shutdown()


def test_sighup_reloads_the_certificate_and_refuses_a_broken_pair(edge, pki, tmp_path):
    ca = pki / "ca.pem"
    first, second = file_fingerprint(pki / "first.pem"), file_fingerprint(pki / "second.pem")
    assert wait_for_log(edge, r"certificate=([0-9a-f]{64}) .*listening over TLS$") == first
    assert seen_certificate(edge.port, ca) == first
    kept = tls_socket(edge.port, ca, alpn=("http/1.1",))  # a connection open before the reload keeps its pair
    install(pki, "second", "second", tmp_path)
    edge.process.send_signal(signal.SIGHUP)
    assert wait_for_log(edge, r"certificate=([0-9a-f]{64}) .*certificate reloaded$") == second
    assert seen_certificate(edge.port, ca) == second
    assert curl(edge.url("/ping"), "--http2", ca=ca).body == "OK"
    kept.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert kept.recv(4096).startswith(b"HTTP/1.1 200 OK")
    assert fingerprint(kept.getpeercert(binary_form=True)) == first
    kept.close()
    install(pki, "first", "second", tmp_path)  # the first certificate with the second's key
    edge.process.send_signal(signal.SIGHUP)
    refused = wait_for_log(edge, r"^.*certificate reload refused.*$")
    assert "does not match" in refused and f"certificate={second}" in refused
    (tmp_path / "edge.pem").write_text("not a certificate\n")
    edge.process.send_signal(signal.SIGHUP)
    refused = wait_for_log(edge, r"^.*certificate reload refused.*$", count=2)
    assert "not a readable PEM" in refused
    assert seen_certificate(edge.port, ca) == second
    assert edge.process.poll() is None and curl(edge.url("/ping"), "--http2", ca=ca).body == "OK"
    assert log_of(edge).count("certificate reloaded") == 1


def start_with(tmp_path, provider, server, name, public_url="https://localhost:1"):
    config = tmp_path / f"{name}.yaml"
    config.write_text(f"""
server:
  listen: "127.0.0.1:{free_port()}"
  public_url: "{public_url}"
{server}
oidc: {{ issuer: "{provider}", client_id: "x", client_secret: "y" }}
session: {{ secrets: ["MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="] }}
""")
    return config, subprocess.run([str(DETOUR), "serve", "--config", str(config)], capture_output=True, text=True,
                                  timeout=20)


def test_bad_certificate_files_stop_the_start_and_name_the_file(tmp_path, provider, pki):
    (tmp_path / "garbage.pem").write_text("-----BEGIN NOTHING-----\nnot base64\n")
    cases = {
        "not-pem": (f'cert_file: "garbage.pem", key_file: "{pki / "first.key"}"', "cert_file",
                    tmp_path / "garbage.pem", "is not a readable PEM certificate chain"),
        "key-not-pem": (f'cert_file: "{pki / "first.pem"}", key_file: "garbage.pem"', "key_file",
                        tmp_path / "garbage.pem", "is not a readable PEM private key"),
        "mismatch": (f'cert_file: "{pki / "first.pem"}", key_file: "{pki / "second.key"}"', "key_file",
                     pki / "second.key", "does not match the certificate in cert_file"),
        "missing": (f'cert_file: "absent.pem", key_file: "{pki / "first.key"}"', "cert_file",
                    tmp_path / "absent.pem", "is not a readable PEM certificate chain"),
    }
    for name, (files, key, path, message) in cases.items():
        config, result = start_with(tmp_path, provider, f"  tls: {{ {files} }}", name)
        assert result.returncode == 2, (name, result.stderr)
        assert message in result.stderr and f"{config}:" in result.stderr, (name, result.stderr)
        named = re.search(rf"{key} (\S+)", result.stderr)
        assert named and os.path.normpath(named.group(1)) == str(path), (name, result.stderr)
    tls = f'  tls: {{ cert_file: "{pki / "first.pem"}", key_file: "{pki / "first.key"}" }}'
    for name, server, message in (
            ("http-public-url", tls, "server.public_url must be an https:// URL"),
            ("plain-without-tls", '  http_listen: "127.0.0.1:1"', "server.http_listen redirects to https"),
            ("hsts-without-tls", '  hsts: "1h"', "server.hsts is sent on answers over TLS")):
        config, result = start_with(tmp_path, provider, server, name, public_url="http://localhost:1")
        assert result.returncode == 2 and message in result.stderr, (name, result.stderr)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_an_expired_certificate_warns_and_serves(make_detour, tmp_path, pki, upstream):
    install(pki, "expired", "expired", tmp_path)
    edge = make_detour(tls=False, server=TLS, extra=routes(upstream, free_port()))
    assert requests.get(edge.url("/echo/public/old"), verify=False).json()["path"] == "/echo/public/old"
    assert seen_certificate_unverified(edge.port) == file_fingerprint(pki / "expired.pem")
    warning = wait_for_log(edge, r"^.*has expired.*$")
    assert " warning " in warning and "not_valid_after=" in warning and "edge.pem" in warning
    done = subprocess.run(["curl", "-sS", "--noproxy", "*", "--cacert", str(pki / "ca.pem"), edge.url("/ping")],
                          capture_output=True, text=True)
    assert done.returncode == 60 and "expired" in done.stderr, "clients still refuse it"


def seen_certificate_unverified(port):
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost") as tls:
        return fingerprint(tls.getpeercert(binary_form=True))


def test_http2_settings_advertise_the_stream_and_header_limits(edge, pki, upstream):
    with Attacker(edge, pki / "ca.pem") as attacker:
        settings = attacker.read(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags)
        assert settings.settings[MAX_CONCURRENT_STREAMS] == 100
        assert settings.settings[MAX_HEADER_LIST_SIZE] == 32768
        # Over the limit the header block is not decoded on: the connection ends, the upstream sees nothing.
        block = attacker.block("/echo/public/huge-header", extra=[("x-big", "b" * 40000)])
        attacker.send(HeadersFrame(1, data=block[:16000], flags=["END_STREAM"]).serialize() +
                      ContinuationFrame(1, data=block[16000:32000]).serialize() +
                      ContinuationFrame(1, data=block[32000:], flags=["END_HEADERS"]).serialize())
        assert attacker.goaway().error_code == PROTOCOL_ERROR
        assert not attacker.of(HeadersFrame, 1)
    assert "/echo/public/huge-header" not in requests.get(upstream + "/stats").json()["hits"]
    assert h2_get(edge, pki / "ca.pem", "/ping")[2] == b"OK"


def test_a_header_list_up_to_max_header_bytes_is_served_once_settings_are_acknowledged(edge, pki, upstream):
    """SETTINGS_MAX_HEADER_LIST_SIZE takes effect when the client acknowledges it: from then on, a 24 KiB header list
    (over SwiftNIO's own 16 KiB default, within max_header_bytes) is served, not refused."""
    with Attacker(edge, pki / "ca.pem") as attacker:
        attacker.read(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags)
        block = attacker.block("/echo/public/large-header", extra=[("x-large", "l" * 24000)])
        attacker.send(SettingsFrame(0, flags=["ACK"]).serialize() +
                      HeadersFrame(1, data=block[:16000], flags=["END_STREAM"]).serialize() +
                      ContinuationFrame(1, data=block[16000:], flags=["END_HEADERS"]).serialize())
        response = attacker.read(lambda f: isinstance(f, HeadersFrame) and f.stream_id == 1)
        assert response is not None and dict(response.fields)[":status"] == "200", attacker.frames
    assert "/echo/public/large-header" in requests.get(upstream + "/stats").json()["hits"]


def test_rapid_reset_ends_the_connection(edge, pki, upstream):
    with Attacker(edge, pki / "ca.pem") as attacker:
        attacker.send(b"".join(attacker.headers(1 + 2 * i, "/echo/public/rapid") +
                               RstStreamFrame(1 + 2 * i, error_code=CANCEL).serialize() for i in range(300)))
        assert_ended_by_goaway(attacker, ENHANCE_YOUR_CALM, edge, pki / "ca.pem", upstream, "/echo/public/after-reset")


def test_a_ping_flood_ends_the_connection(edge, pki, upstream):
    with Attacker(edge, pki / "ca.pem") as attacker:
        attacker.send(b"".join(PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize() for i in range(300)))
        assert_ended_by_goaway(attacker, ENHANCE_YOUR_CALM, edge, pki / "ca.pem", upstream, "/echo/public/after-ping")
        assert len(attacker.of(PingFrame)) <= 201, "the flood is not answered to its end"


def test_a_settings_flood_ends_the_connection(edge, pki, upstream):
    with Attacker(edge, pki / "ca.pem") as attacker:
        attacker.send(b"".join(SettingsFrame(0, settings={4: 65535}).serialize() for _ in range(300)))
        assert_ended_by_goaway(attacker, ENHANCE_YOUR_CALM, edge, pki / "ca.pem", upstream,
                               "/echo/public/after-settings")
        assert len(attacker.of(SettingsFrame)) <= 203, "the flood is not acknowledged to its end"


def continued(attacker, stream, path, continuations):
    """A header block cut into one HEADERS frame and `continuations` CONTINUATION frames."""
    block = attacker.block(path, extra=[("x-padding", "p" * 40)])
    cuts = [block[:1]] + [block[i:i + 1] for i in range(1, continuations)] + [block[continuations:]]
    frames = HeadersFrame(stream, data=cuts[0], flags=["END_STREAM"]).serialize()
    for i, piece in enumerate(cuts[1:], start=1):
        frames += ContinuationFrame(stream, data=piece, flags=["END_HEADERS"] if i == continuations else []).serialize()
    return frames


def test_more_than_five_continuation_frames_end_the_connection(edge, pki, upstream):
    ca = pki / "ca.pem"
    with Attacker(edge, ca) as allowed:
        allowed.send(continued(allowed, 1, "/echo/public/five-continuations", 5))
        answer = allowed.read(lambda f: isinstance(f, HeadersFrame))
        assert answer is not None and dict(answer.fields)[":status"] == "200", allowed.frames
    with Attacker(edge, ca) as attacker:
        attacker.send(continued(attacker, 1, "/echo/public/six-continuations", 6))
        assert_ended_by_goaway(attacker, ENHANCE_YOUR_CALM, edge, ca, upstream, "/echo/public/after-continuation")
    assert "/echo/public/six-continuations" not in requests.get(upstream + "/stats").json()["hits"]


def test_a_stream_beyond_one_hundred_ends_the_connection(edge, pki, upstream):
    """The 101st concurrent stream is a PROTOCOL_ERROR for the whole connection (swift-nio-http2 sends no
    REFUSED_STREAM for it); the hundred open before it are not reset."""
    with Attacker(edge, pki / "ca.pem") as attacker:
        attacker.read(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags)
        attacker.send(SettingsFrame(0, flags=["ACK"]).serialize() +
                      b"".join(attacker.headers(1 + 2 * i, "/slow?ms=1000") for i in range(101)))
        assert_ended_by_goaway(attacker, PROTOCOL_ERROR, edge, pki / "ca.pem", upstream, "/echo/public/after-streams")
        assert not [f for f in attacker.of(RstStreamFrame) if f.stream_id <= 199], "streams within the limit reset"


def test_a_streamed_response_reaches_an_http2_client_as_the_upstream_sends_it(edge, pki, upstream):
    """A response's latest DATA frame is held to carry END_STREAM with it, but never past a flush: the first part of
    a body the upstream sends in two, three seconds apart, reaches the client before the second is sent."""
    with Attacker(edge, pki / "ca.pem") as attacker:
        attacker.send(attacker.headers(1, "/drip?ms=3000"))
        first = attacker.read(lambda f: isinstance(f, DataFrame) and f.stream_id == 1 and f.data, timeout=2.5)
        assert first is not None and first.data == b"first", attacker.frames
        assert "END_STREAM" not in first.flags
        last = attacker.read(lambda f: isinstance(f, DataFrame) and f.stream_id == 1 and f.data, timeout=5)
        assert last is not None and last.data == b"second" and "END_STREAM" in last.flags, attacker.frames


def test_a_get_that_sends_data_without_framing_it_is_reset_not_smuggled(edge, pki, upstream):
    ca = pki / "ca.pem"
    inner = b"GET /echo/public/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with Attacker(edge, ca) as attacker:
        attacker.send(attacker.headers(1, "/echo/public/carrier", end_stream=False) +
                      DataFrame(1, data=inner, flags=["END_STREAM"]).serialize())
        assert attacker.read(lambda f: isinstance(f, RstStreamFrame) and f.stream_id == 1), attacker.frames
        assert not attacker.of(HeadersFrame, 1), "no response for the carrier"
        # A body longer than its Content-Length is refused too (RFC 9113 8.1.1).
        attacker.send(attacker.headers(3, "/echo/public/overlong", "POST", end_stream=False,
                                       extra=[("content-length", "2")]) +
                      DataFrame(3, data=b"ab" + inner, flags=["END_STREAM"]).serialize())
        assert attacker.read(lambda f: isinstance(f, RstStreamFrame) and f.stream_id == 3), attacker.frames
        assert not attacker.of(HeadersFrame, 3)
    hits = requests.get(upstream + "/stats").json()["hits"]
    assert "/echo/public/smuggled" not in hits and "/echo/public/overlong" not in hits
    status, _, body = h2_get(edge, ca, "/echo/public/after-smuggle")
    assert status == 200 and json.loads(body)["body"] == ""


@pytest.mark.parametrize("field, body", [
    (("content-length", "+5"), b"hello"), (("content-length", "5, 5"), b"hello"), (("content-length", "-0"), None),
    (("content_length", "5"), b"hello"),
    (("x-note", "a\x01b"), None), (("x-note", "\x7f"), None), (("x-note", "bell\x07"), None)])
def test_a_head_an_http1_upstream_could_read_another_way_is_refused(edge, pki, upstream, field, body):
    """SwiftNIO's HTTP/2 codec reads `+5` and `5, 5` as lengths and checks values only for CR, LF and NUL; passed on
    verbatim, an HTTP/1.1 upstream could frame the body differently or drop the line; so could one that reads
    `content_length` as `content-length` (CGI does). Detour answers 400 instead."""
    path = f"/echo/public/framing-{field[0]}-{ord(field[1][-1])}"
    with Attacker(edge, pki / "ca.pem") as attacker:
        attacker.send(attacker.headers(1, path, "POST", end_stream=body is None, extra=[field]) +
                      (DataFrame(1, data=body, flags=["END_STREAM"]).serialize() if body else b""))
        response = attacker.read(lambda f: isinstance(f, HeadersFrame) and f.stream_id == 1)
        assert response is not None and dict(response.fields)[":status"] == "400", attacker.frames
    assert path not in requests.get(upstream + "/stats").json()["hits"]


def test_a_connection_ended_by_goaway_is_closed_at_once(edge, pki):
    """RFC 9113 5.4.1: after a GOAWAY for a connection error the endpoint MUST close the TCP connection."""
    with Attacker(edge, pki / "ca.pem") as attacker:
        attacker.send(b"".join(PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize() for i in range(300)))
        attacker.goaway()
        started = time.time()
        attacker.read(timeout=3)
        assert attacker.closed, f"still open {time.time() - started:.1f} s after GOAWAY"


def closed_by_peer(connection, timeout):
    connection.settimeout(timeout)
    try:
        while connection.recv(65536):
            pass
    except (TimeoutError, socket.timeout):
        return False
    except OSError:
        pass
    return True


def test_a_busy_http2_connection_outlives_the_header_timeout(serve_tls, pki):
    ca = pki / "ca.pem"
    edge = serve_tls(server='  limits: { header_timeout: "2s" }\n')
    with tls_socket(edge.port, ca, alpn=("h2",)) as idle, socket.create_connection(("127.0.0.1", edge.port)) as silent:
        idle.sendall(Attacker.PREFACE + SettingsFrame(0).serialize())  # and then opens no stream
        with H2Client(edge, ca) as client:
            started = time.time()
            for i in range(8):
                try:
                    status, _, _ = client.request(f"/echo/public/busy?i={i}")
                except AssertionError as error:
                    raise AssertionError(f"request {i}, {time.time() - started:.1f} s into the connection: {error}")
                assert status == 200
                time.sleep(0.5)
        assert closed_by_peer(idle, 1), "an HTTP/2 connection that opens no stream is closed after header_timeout"
        assert closed_by_peer(silent, 1), "a connection that never shakes hands is closed after header_timeout"


def test_a_100_mib_upload_over_http2_streams_in_bounded_memory(edge, pki, tmp_path):
    size = 100 << 20
    big = tmp_path / "upload.bin"
    with open(big, "wb") as file:
        file.truncate(size)  # sparse: zeros on read, nothing on disk
    status = f"/proc/{edge.process.pid}/status"

    def kib(field):
        return int(re.search(rf"^{field}:\s+(\d+) kB", open(status).read(), re.MULTILINE).group(1))

    before = kib("VmRSS")
    try:
        answer = curl(edge.url("/sink?upload=1"), "--http2", "-X", "POST", "--data-binary", f"@{big}",
                      "-H", "Content-Type: application/octet-stream", ca=pki / "ca.pem")
    finally:
        big.unlink()
    assert answer.version == "2" and answer.status == 200, answer
    assert json.loads(answer.body) == {"received": size}
    growth = (kib("VmHWM") - before) / 1024
    assert growth < 40, f"peak RSS grew by {growth:.0f} MiB for a 100 MiB upload"


def test_chromium_signs_in_over_https_and_loads_the_app_over_http2(edge, pki, provider, tmp_path):
    """The test CA is trusted through an NSS database in Chromium's HOME (certutil), not by ignoring errors."""
    from websockets.sync.client import connect
    process, page = chromium_devtools(tmp_path / "profile", trusting_home(tmp_path / "home", pki / "ca.pem"))
    try:
        with connect(page, max_size=None) as socket_:
            browser = DevTools(socket_)
            browser.open(edge.url("/echo/app?from=chromium"))
            browser.sign_in_at_provider(provider)
            browser.wait("location.href == %s && document.readyState == 'complete'"
                         % json.dumps(edge.url("/echo/app?from=chromium")))
            seen = json.loads(browser.evaluate("document.body.innerText"))
            assert seen["path"] == "/echo/app?from=chromium"
            assert seen["headers"]["x-forwarded-user"] == "alice"
            assert seen["headers"]["x-forwarded-proto"] == "https"
            assert browser.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
            cookies = {c["name"]: c for c in browser.call("Network.getAllCookies")["cookies"]}
            assert cookies["__Host-_detour"]["secure"] and cookies["__Host-_detour"]["httpOnly"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_chromium_a1_a2_and_a_form_post_callback_over_https(make_detour, pki, provider, upstream, tmp_path):
    """Rows A1, A2 and C1 in a real browser, with `response_mode: form_post`: the provider's page POSTs the code
    back cross-site (the state cookie is `SameSite=None; Secure` for that), Detour answers 303, and the browser lands
    on the page with a GET. A form POST while signed out (no preserve_post) goes 303 to sign in and back to the
    form's URL."""
    from websockets.sync.client import connect
    install(pki, "first", "first", tmp_path)
    edge = make_detour(tls=pki / "ca.pem", server=TLS, response_mode="form_post", extra=routes(upstream, free_port()))
    process, page = chromium_devtools(tmp_path / "profile", trusting_home(tmp_path / "home", pki / "ca.pem"))
    hits = lambda: requests.get(upstream + "/stats").json()["hits"].get("/echo/a2", 0)  # noqa: E731
    try:
        with connect(page, max_size=None) as socket_:
            browser = DevTools(socket_)
            browser.open(edge.url("/echo/public/page"))
            browser.wait("document.readyState == 'complete' && location.pathname == '/echo/public/page'")
            before = hits()
            # A2: a signed-out form POST.
            browser.evaluate("""
                document.body.innerHTML = '<form id="f" method="post" action="/echo/a2?x=1">'
                    + '<input name="note" value="hello"></form>';
                document.getElementById('f').submit(); true""")
            # A1 after A2's 303: the provider's page.
            assert "response_mode=form_post" in browser.sign_in_at_provider(provider)
            # C1: the provider POSTs the code back (response_mode=form_post); Detour's 303 makes the return a GET.
            browser.wait("location.href == %s && document.readyState == 'complete'" % json.dumps(edge.url("/echo/a2?x=1")))
            seen = json.loads(browser.evaluate("document.body.innerText"))
            assert seen["method"] == "GET" and seen["headers"]["x-forwarded-user"] == "alice"
            assert hits() == before + 1, "the form itself was never sent on (row A2, not A2b)"
            navigation = browser.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
            assert json.loads(navigation)["type"] == "navigate"
            cookies = {c["name"]: c for c in browser.call("Network.getAllCookies")["cookies"]}
            assert cookies["__Host-_detour"]["secure"] and cookies["__Host-_detour"]["sameSite"] == "Lax"
    finally:
        process.terminate()
        process.wait(timeout=10)
