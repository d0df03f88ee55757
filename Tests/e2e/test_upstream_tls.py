"""Issue 14.3: `https://` upstreams were sent plaintext HTTP, the user's access token included. Now they are reached
over TLS with the certificate and its name verified (the system's trust store plus the route's `ca_file`, SNI and
name from the URL or `server_name`, a client certificate for mutual TLS); a failure is a 502 with a log line, and
never a plaintext retry. Each case runs against a real TLS server (Python's ssl) with certificates made by openssl."""
import socket
import subprocess
import sys
import threading

import pytest
import requests

from conftest import ROOT, Detour, signed_in, wait_for


def openssl(*arguments, cwd):
    subprocess.run(["openssl", *arguments], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for localhost signed by it, and a client CA with one client certificate."""
    folder = tmp_path_factory.mktemp("pki")
    for name, subject in (("ca", "Detour test CA"), ("client-ca", "Detour test client CA")):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-subj", f"/CN={subject}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=folder)
    for name, ca, extension in (("server", "ca", "subjectAltName=DNS:localhost"),
                                ("client", "client-ca", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)
        (folder / f"{name}.ext").write_text(extension + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=folder)
    return folder


def tls_upstream(pki, client_ca=False):
    arguments = ["--tls", str(pki / "server.pem"), str(pki / "server.key")]
    if client_ca:
        arguments.append(str(pki / "client-ca.pem"))
    process = subprocess.Popen([sys.executable, str(ROOT / "Tests" / "servers" / "http_fixture.py"), *arguments],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return process, int(process.stdout.readline())


@pytest.fixture(scope="module")
def upstreams(pki):
    plain, plain_port = tls_upstream(pki)
    mutual, mutual_port = tls_upstream(pki, client_ca=True)
    yield plain_port, mutual_port
    for process in (plain, mutual):
        process.stdin.close()
        process.terminate()
        process.wait()


def route(name, path, upstream, tls=""):
    return f"""
  - name: {name}
    match: {{ host: "localhost", path: "{path}" }}
    upstream: "{upstream}"
    allow: [{{ authenticated: true }}]
    pass_access_token: true{tls}"""


def test_https_upstreams_are_verified_and_never_sent_plaintext(tmp_path, provider, pki, upstreams):
    tls_port, mutual_port = upstreams
    recorded = []
    listener = socket.create_server(("127.0.0.1", 0))

    def record():
        """A plaintext server where Detour expects TLS: it must see a handshake, never a request."""
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    recorded.append(connection.recv(65536))
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                except OSError:
                    pass

    threading.Thread(target=record, daemon=True).start()
    ca = f"\n    upstream_tls: {{ ca_file: \"{pki / 'ca.pem'}\" }}"
    client = (f"\n    upstream_tls: {{ ca_file: \"{pki / 'ca.pem'}\", cert_file: \"{pki / 'client.pem'}\", "
              f"key_file: \"{pki / 'client.key'}\" }}")
    routes = "routes:" + "".join([
        route("verified", "/echo/ok/", f"https://localhost:{tls_port}", ca),
        route("unknown-ca", "/echo/unknown-ca/", f"https://localhost:{tls_port}"),
        route("wrong-name", "/echo/wrong-name/", f"https://localhost:{tls_port}",
              ca[:-2] + ", server_name: \"other.example\" }"),
        route("by-address", "/echo/by-address/", f"https://127.0.0.1:{tls_port}",
              ca[:-2] + ", server_name: \"localhost\" }"),
        route("mutual", "/echo/mutual/", f"https://localhost:{mutual_port}", client),
        route("no-client-cert", "/echo/no-client-cert/", f"https://localhost:{mutual_port}", ca),
        route("plaintext", "/echo/plaintext/", f"https://localhost:{listener.getsockname()[1]}"),
    ])
    detour = Detour(tmp_path, provider, extra=routes)
    try:
        wait_for(detour.url("/ready"))
        alice = signed_in(detour)
        for path in ("/echo/ok/x", "/echo/by-address/x", "/echo/mutual/x"):
            answer = alice.get(detour.url(path))
            assert answer.status_code == 200, (path, answer.text)
            assert answer.json()["path"] == path
            assert answer.json()["headers"]["x-forwarded-access-token"]
        for path in ("/echo/unknown-ca/x", "/echo/wrong-name/x", "/echo/no-client-cert/x", "/echo/plaintext/x"):
            assert alice.get(detour.url(path)).status_code == 502, path
        assert recorded, "the plaintext server was reached"
        for received in recorded:
            assert received.startswith(b"\x16\x03"), "a TLS handshake record, never an HTTP request"
            assert b"GET " not in received and b"X-Forwarded-Access-Token" not in received
    finally:
        detour.stop()
        listener.close()
    log = detour.config.with_name(detour.config.stem + ".log").read_text()
    assert "upstream TLS failed" in log


def test_upstream_tls_mistakes_are_configuration_errors(tmp_path, provider):
    cases = [
        ("http://127.0.0.1:1", "\n    upstream_tls: { server_name: \"a.example\" }", "applies to https:// upstreams only"),
        ("https://10.0.0.1", "", "server_name is required for an https:// upstream addressed by IP"),
        ("https://a.example", "\n    upstream_tls: { cert_file: \"c.pem\" }", "go together"),
        ("https://a.example", "\n    upstream_tls: { ca_file: \"/nonexistent/ca.pem\" }", "upstream_tls cannot be used"),
    ]
    for upstream, tls, message in cases:
        config = tmp_path / "detour.yaml"
        config.write_text(f"""
server: {{ listen: "127.0.0.1:1", public_url: "http://localhost:1" }}
oidc: {{ issuer: "{provider}", client_id: "x", client_secret: "y" }}
session: {{ secrets: ["MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="] }}
routes:{route("app", "/", upstream, tls)}
""")
        from conftest import DETOUR
        result = subprocess.run([str(DETOUR), "serve", "--config", str(config)], capture_output=True, text=True,
                                timeout=20)
        assert result.returncode == 2, (upstream, tls, result.stderr)
        assert message in result.stderr and f"{config}:" in result.stderr, result.stderr
