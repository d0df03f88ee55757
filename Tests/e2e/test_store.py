"""Server-side sessions (`session.store`, CONTRACT section 8): the memory store in one process, and two Detour
processes sharing a real PostgreSQL cluster: sign-in across replicas, sign-out that kills every copy of a cookie on
every replica within a second, single-use sign-in state, the database going away and coming back, and start-up
errors that name the problem without the password."""
import subprocess
import threading
import time
from urllib.parse import urlparse

import pytest
import requests

from conftest import DETOUR, Detour, free_port, routes, sign_in_at_provider, signed_in, start, wait_for


def copy_of(session):
    """Another client holding the same cookies (a stolen or copied cookie)."""
    copy = requests.Session()
    copy.cookies.update(session.cookies)
    return copy


def on(detour, url):
    """`url` (on another replica's public URL) sent to `detour` instead, as a load balancer might."""
    parts = urlparse(url)
    return detour.url(parts.path + ("?" + parts.query if parts.query else ""))


@pytest.fixture
def replicas(tmp_path, provider, upstream, postgres):
    """Two Detours on one database and one public URL (the first's), as behind a load balancer."""
    _, url = postgres.new_database()
    store = f'  store: "{url}"'
    started = []
    try:
        started.append(Detour(tmp_path, provider, session=store, extra=routes(upstream, free_port())))
        started.append(Detour(tmp_path, provider, session=store, extra=routes(upstream, free_port()),
                              public_url=started[0].base))
        for replica in started:
            wait_for(replica.url("/ready"))
        yield tuple(started)
    finally:
        for replica in started:
            replica.stop()


def test_the_memory_store_ends_every_copy_of_a_cookie_at_sign_out(make_detour, upstream):
    detour = make_detour(session="  store: memory", extra=routes(upstream, free_port()))
    session = signed_in(detour)
    copy = copy_of(session)
    assert copy.get(detour.url("/echo/app")).status_code == 200
    cookie = session.cookies.get("_detour")
    assert len(cookie) < 200 and "eyJhbGciOi" not in cookie, "the cookie holds a sealed handle, not the session"
    assert session.get(detour.url("/oauth2/sign_out"), allow_redirects=False).status_code == 303
    assert copy.get(detour.url("/echo/app"), allow_redirects=False).status_code != 200
    assert copy.get(detour.url("/oauth2/userinfo")).status_code == 401


def test_the_cookie_store_cannot_end_a_copied_cookie_as_documented(make_detour, upstream):
    detour = make_detour(extra=routes(upstream, free_port()))
    session = signed_in(detour)
    copy = copy_of(session)
    session.get(detour.url("/oauth2/sign_out"), allow_redirects=False)
    assert copy.get(detour.url("/echo/app")).status_code == 200, "the control: why server-side stores exist"


def test_a_sign_in_started_on_one_replica_finishes_on_the_other(replicas):
    first, second = replicas
    session = requests.Session()
    authorize = start(session, first, first.url("/echo/app")).headers["Location"]
    callback = sign_in_at_provider(session, authorize)
    done = session.get(on(second, callback), allow_redirects=False)
    assert done.status_code == 303, done.text
    for replica in (first, second):
        assert session.get(replica.url("/echo/app")).status_code == 200
    replay = requests.get(on(first, callback), cookies={"_detour_state": session.cookies.get("_detour_state") or ""},
                          allow_redirects=False)
    assert replay.status_code == 400


def test_a_callback_replayed_on_the_other_replica_is_refused(replicas):
    first, second = replicas
    session = requests.Session()
    authorize = start(session, first, first.url("/")).headers["Location"]
    callback = sign_in_at_provider(session, authorize)
    state_cookie = session.cookies.get("_detour_state")
    assert session.get(callback, allow_redirects=False).status_code == 303
    replay = requests.get(on(second, callback), cookies={"_detour_state": state_cookie}, allow_redirects=False,
                          headers={"Accept": "text/html"})
    assert replay.status_code == 400 and "already completed" in replay.text


def test_sign_out_on_one_replica_ends_a_copied_cookie_on_the_other_within_a_second(replicas):
    first, second = replicas
    session = signed_in(first)
    copy = copy_of(session)  # one keep-alive connection to the second replica, which has read the session
    for _ in range(3):
        assert copy.get(second.url("/echo/app")).status_code == 200
    began = time.monotonic()
    assert session.get(first.url("/oauth2/sign_out"), allow_redirects=False).status_code == 303
    while copy.get(second.url("/echo/app"), allow_redirects=False).status_code == 200:
        assert time.monotonic() - began < 1.0, "still signed in on the other replica after a second"
        time.sleep(0.01)
    print(f"revoked on the other replica after {(time.monotonic() - began) * 1000:.0f} ms")
    assert copy.get(first.url("/oauth2/userinfo")).status_code == 401


def test_the_database_keeps_only_sealed_sessions_under_digests(replicas, postgres):
    first, _ = replicas
    session = signed_in(first)
    database = urlparse(first.config.read_text().split('store: "')[1].split('"')[0]).path[1:]
    rows = postgres.sql("SELECT key, sealed, subject FROM detour_sessions", database).splitlines()
    assert len(rows) == 1
    key, sealed, subject = rows[0].split("|")
    assert subject == "alice" and len(key) == 64
    cookie = session.cookies.get("_detour")
    assert cookie not in rows[0] and "eyJhbGciOi" not in sealed and "alice" not in sealed, "no token, no cookie in a dump"
    assert postgres.sql("SELECT max(version) FROM detour_schema", database).strip() == "3"


def test_replicas_starting_together_migrate_once(tmp_path, provider, postgres):
    name, url = postgres.new_database()
    started = []
    threads = [threading.Thread(target=lambda: started.append(Detour(tmp_path, provider, session=f'  store: "{url}"')))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(started) == 3
        for replica in started:
            wait_for(replica.url("/ready"))
        assert postgres.sql("SELECT count(*), max(version) FROM detour_schema", name).strip() == "3|3", "each once"
    finally:
        for replica in started:
            replica.stop()


def test_the_database_down_is_a_503_and_not_ready_then_it_recovers(replicas, postgres):
    first, second = replicas
    session = signed_in(first)
    assert session.get(second.url("/echo/app")).status_code == 200
    postgres.stop()
    try:
        deadline = time.monotonic() + 5
        while requests.get(first.url("/ready")).status_code != 503:
            assert time.monotonic() < deadline, "/ready never said 503"
            time.sleep(0.1)
        assert "session store" in requests.get(first.url("/ready")).text
        for replica in (first, second):
            answer = session.get(replica.url("/echo/app"), allow_redirects=False)
            assert answer.status_code == 503, "nobody stays signed in unchecked, nobody is signed out"
        fresh = requests.Session()
        authorize = start(fresh, first, first.url("/")).headers["Location"]
        failed = fresh.get(sign_in_at_provider(fresh, authorize), allow_redirects=False, headers={"Accept": "text/html"})
        assert failed.status_code == 503 and "Location" not in failed.headers
        assert first.process.poll() is None and second.process.poll() is None, "no crash"
    finally:
        postgres.start()
    for replica in (first, second):
        wait_for(replica.url("/ready"), timeout=15)
        assert session.get(replica.url("/echo/app")).status_code == 200, "the session outlived the outage"


def test_a_wrong_password_stops_start_up_without_printing_it(tmp_path, provider, postgres):
    name, url = postgres.new_database()
    wrong = url.replace(postgres.PASSWORD, "not-the-password-42")
    config = tmp_path / "wrong.yaml"
    config.write_text(f"""
server: {{ listen: "127.0.0.1:{free_port()}", public_url: "http://localhost:4180" }}
oidc: {{ issuer: "{provider}", client_id: "c", client_secret: "s" }}
session: {{ secrets: ["MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="], store: "{wrong}" }}
""")
    result = subprocess.run([str(DETOUR), "serve", "--config", str(config)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2, result.stderr
    assert "password authentication failed" in result.stderr, result.stderr
    assert "not-the-password-42" not in result.stdout + result.stderr


def complete_sign_in(session, replica, target):
    """Start sign-in on `replica` for `target`, and complete it at the provider and the callback."""
    started = session.get(replica.url("/oauth2/start"), params={"rd": target}, allow_redirects=False)
    if started.status_code != 302:
        return started
    done = session.get(on(replica, sign_in_at_provider(session, started.headers["Location"])), allow_redirects=False)
    assert done.status_code == 303, done.text
    return done


def test_a_sign_in_loop_is_caught_across_replicas_even_when_callbacks_succeed(replicas):
    """Row S2: an upstream that sends a signed-in user back to sign-in makes a loop in which every callback
    succeeds; the starts are counted per browser in the database, whichever replica serves them."""
    first, second = replicas
    browser = requests.Session()
    target = first.url("/echo/looping")
    for attempt in range(5):
        assert complete_sign_in(browser, (first, second)[attempt % 2], target).status_code == 303, attempt
    sixth = browser.get(second.url("/oauth2/start"), params={"rd": target}, allow_redirects=False,
                        headers={"Accept": "text/html"})
    assert sixth.status_code == 200 and "Location" not in sixth.headers
    assert "Sign-in loop stopped" in sixth.text
    other = requests.Session()  # another browser behind the same address is not caught in this one's loop
    assert other.get(first.url("/oauth2/start"), params={"rd": target}, allow_redirects=False).status_code == 302
