"""Fixtures for Detour's end-to-end tests: a real OpenID provider (oidc-provider-mock) on loopback,
Detour built from this checkout and run as a process, and helpers that drive the sign-in flow."""
import glob
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
DETOUR = pathlib.Path(os.environ.get("DETOUR_BINARY", ROOT / ".build" / "debug" / "detour"))
SECRET = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, status=200, timeout=20, verify=True, each=1):
    """Waits up to `timeout` seconds for `url` to answer `status`, giving each try `each` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=each, verify=verify).status_code == status:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer {status} within {timeout} s")


@pytest.fixture(scope="session")
def provider():
    issuer, process = start_mock_provider()
    yield issuer
    process.terminate()
    process.wait()


class Detour:
    """A running `detour serve` with its own configuration.

    With `tls` (the CA file that signed the certificate `server` gives under `server.tls`, or False to trust any)
    the listener and the public URL are https, and readiness is checked with that CA. Detour's own log lines are
    text here, which the tests search with patterns; `log_format="json"` gives the default of `detour serve`."""

    def __init__(self, tmp_path, issuer, response_mode="query", token_auth="client_secret_basic", extra="",
                 trusted_proxies=(), server="", oidc="", session="", client=("detour-e2e", "s3cret"), tls=None,
                 public_url=None, admin_port=None, log_format="text"):
        self.port = free_port()
        self.verify = True if tls is None else str(tls) if tls else False
        self.base = f"{'http' if tls is None else 'https'}://localhost:{self.port}"
        # Where /ping and /ready answer: the admin listener when there is one (`server.admin_listen`).
        self.health = f"http://127.0.0.1:{admin_port}" if admin_port else self.base
        if admin_port:
            server += f'\n  admin_listen: "127.0.0.1:{admin_port}"'
        self.config = tmp_path / f"detour-{self.port}.yaml"
        # private_key_jwt authenticates with a key (given in `oidc`), and a secret beside it is refused.
        secret_line = "" if token_auth == "private_key_jwt" else '  client_secret: "${E2E_CLIENT_SECRET}"\n'
        self.config.write_text(f"""
server:
  listen: "127.0.0.1:{self.port}"
  public_url: "{public_url or self.base}"
  trusted_proxies: {list(trusted_proxies)!r}
{server}
oidc:
  issuer: "{issuer}"
  client_id: "{client[0]}"
{secret_line}  response_mode: "{response_mode}"
  token_endpoint_auth: "{token_auth}"
{oidc}
session:
  secrets: ["{SECRET}"]
{session}
return_to:
  allowed_hosts: ["localhost:*", "app.example.com"]
{extra}""")
        self.log_path = tmp_path / f"detour-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(DETOUR), "serve", "--config", str(self.config)], stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "E2E_CLIENT_SECRET": client[1], "DETOUR_LOG_LEVEL": "debug",
                 "DETOUR_LOG_FORMAT": log_format})
        wait_for(self.health + "/ping", verify=self.verify)

    def url(self, path):
        return self.base + path

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def detour(tmp_path, provider):
    instance = Detour(tmp_path, provider)
    wait_for(instance.url("/ready"))
    yield instance
    instance.stop()


@pytest.fixture
def make_detour(tmp_path, provider):
    instances = []

    def make(**options):
        issuer = options.pop("issuer", None)
        instance = Detour(tmp_path, issuer or provider, **options)
        instances.append(instance)
        if issuer is None:
            # Discovery loads in the background after the listener is up: sign-in is possible once /ready says so.
            wait_for(instance.health + "/ready", verify=instance.verify)
        return instance

    yield make
    for instance in instances:
        instance.stop()


def sign_in_at_provider(session, authorize_url, subject="alice"):
    """What a person does on the provider's page: submit the form with a subject.
    Returns the provider's redirect back to Detour's callback."""
    page = session.get(authorize_url, allow_redirects=False)
    assert page.status_code == 200, page.text
    answer = session.post(authorize_url, data={"sub": subject}, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def start(session, detour, rd):
    response = session.get(detour.url("/oauth2/start"), params={"rd": rd}, allow_redirects=False)
    assert response.status_code == 302, response.text
    return response


def query(url):
    return {key: values[0] for key, values in parse_qs(urlparse(url).query).items()}


@pytest.fixture(scope="session")
def upstream():
    """The loopback fixture server (Tests/servers/http_fixture.py) as a real upstream that echoes what it receives."""
    process = subprocess.Popen([sys.executable, str(ROOT / "Tests" / "servers" / "http_fixture.py")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    yield f"http://127.0.0.1:{port}"
    process.stdin.close()
    process.terminate()
    process.wait()


def start_mock_provider(*options):
    """oidc-provider-mock on a free loopback port with alice as its user; returns (issuer, process)."""
    port = free_port()
    executable = pathlib.Path(sys.executable).with_name("oidc-provider-mock")
    claims = '{"sub": "alice", "email": "alice@example.com", "groups": ["admins", "sre"], "preferred_username": "alice"}'
    process = subprocess.Popen(
        [str(executable), "--port", str(port), "--require-nonce", "true", "--user-claims", claims, *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    issuer = f"http://127.0.0.1:{port}"
    wait_for(issuer + "/.well-known/openid-configuration")
    return issuer, process


def start_provider_script(script, *arguments, path=""):
    """One of Tests/providers' scripts on a free loopback port, once it prints "ready"; returns (issuer, process)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "Tests" / "providers" / script), str(port), *arguments],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout.readline().strip() == "ready"
    issuer = f"http://127.0.0.1:{port}{path}"
    wait_for(issuer + "/.well-known/openid-configuration")
    return issuer, process


@pytest.fixture(scope="session")
def oauth_provider():
    """django-oauth-toolkit with RFC 7662 introspection (Tests/providers/oauth_provider.py); yields its issuer."""
    issuer, process = start_provider_script("oauth_provider.py", path="/o")
    yield issuer
    process.terminate()
    process.wait()


NGINX_WRAPPER = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
{servers}
}}
"""


def nginx_configuration(folder, servers):
    """A whole nginx.conf, its files under `folder`, serving the `server` blocks given."""
    return NGINX_WRAPPER.format(dir=folder, servers=servers)


@pytest.fixture(scope="session")
def websocket_upstream():
    """A real WebSocket echo server (the websockets package) on loopback."""
    import threading
    from websockets.sync.server import serve

    def echo(connection):
        for message in connection:
            connection.send(message)

    server = serve(echo, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.socket.getsockname()[1]}"
    server.shutdown()


def routes(upstream, dead_port, websocket=None):
    websocket_route = f"""
  - name: websocket
    match: {{ host: "localhost", path: "/ws/" }}
    upstream: "{websocket}"
    allow: [{{ authenticated: true }}]""" if websocket else ""
    return f"""
routes:{websocket_route}
  - name: app
    match: {{ host: "localhost" }}
    upstream: "{upstream}"
    allow: [{{ group: ["admins"] }}]
    public: ["/echo/public/", "/echo/v2/", "/redirect-absolute/", "/big", "/sink", "/slow", "/drip", "/early", "/stats"]
  - name: down
    match: {{ host: "localhost", path: "/down/" }}
    upstream: "http://127.0.0.1:{dead_port}"
    public: ["/down/"]
redirects:
  - name: hop
    match: {{ host: "localhost", path: "/v1/" }}
    to: "/echo/v2/"
    status: 307
"""


@pytest.fixture
def untrusting_proxy(tmp_path, provider, upstream):
    instance = Detour(tmp_path, provider, extra=routes(upstream, free_port()))
    wait_for(instance.url("/ready"))
    yield instance
    instance.stop()


@pytest.fixture
def proxy(tmp_path, provider, upstream, websocket_upstream):
    instance = Detour(tmp_path, provider, extra=routes(upstream, free_port(), websocket_upstream),
                      trusted_proxies=["127.0.0.1"])
    wait_for(instance.url("/ready"))
    yield instance
    instance.stop()


def signed_in(detour, subject="alice"):
    session = requests.Session()
    authorize = start(session, detour, detour.url("/")).headers["Location"]
    done = session.get(sign_in_at_provider(session, authorize, subject), allow_redirects=False)
    assert done.status_code == 303
    return session


def postgres_program(name):
    """A PostgreSQL server program: on PATH, or where Debian's `postgresql` package puts it."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package (.ci/run does)")
    return found


class Postgres:
    """A private PostgreSQL cluster (initdb in a temporary folder, a free loopback port, password authentication
    for user `detour`), run as the `postgres` user when the tests run as root, as PostgreSQL requires."""

    PASSWORD = "pg-s3cret"

    def __init__(self, folder):
        self.folder = folder
        self.port = free_port()
        self.data = folder / "data"
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder.parent, 0o755)
        (folder / "password").write_text(self.PASSWORD + "\n")
        if self.as_owner:
            shutil.chown(folder, "postgres")
            shutil.chown(folder / "password", "postgres")
        subprocess.run(self.as_owner + [postgres_program("initdb"), "-D", str(self.data), "-U", "detour",
                                        "--pwfile", str(folder / "password"), "--auth-host=scram-sha-256",
                                        "--auth-local=trust", "--no-sync"],
                       check=True, capture_output=True)
        self.databases = 0
        self.start()

    def pg_ctl(self, *arguments):
        subprocess.run(self.as_owner + [postgres_program("pg_ctl"), "-D", str(self.data), *arguments],
                       check=True, capture_output=True, timeout=60)

    def start(self):
        self.pg_ctl("-w", "-l", str(self.folder / "server.log"), "-o",
                    f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self):
        self.pg_ctl("-w", "-m", "fast", "stop")

    def sql(self, statement, database="postgres"):
        """Runs SQL as the cluster's owner over its socket; returns psql's unaligned output."""
        return subprocess.run(self.as_owner + [postgres_program("psql"), "-h", str(self.folder), "-p", str(self.port),
                                               "-U", "detour", "-d", database, "-At", "-c", statement],
                              check=True, capture_output=True, text=True).stdout

    def new_database(self):
        """A fresh, empty database; returns its name and the URL Detour reaches it by."""
        self.databases += 1
        name = f"detour_{self.databases}"
        self.sql(f"CREATE DATABASE {name}")
        return name, f"postgres://detour:{self.PASSWORD}@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres():
    # Not under pytest's own temporary folder: that is private to this user, and the cluster's owner must reach it.
    folder = pathlib.Path(tempfile.mkdtemp(prefix="detour-postgres-"))
    cluster = Postgres(folder / "cluster")
    yield cluster
    try:
        cluster.stop()
    except subprocess.CalledProcessError:
        pass  # a test stopped it already
    shutil.rmtree(folder, ignore_errors=True)
