"""Headless Chromium for the end-to-end tests, driven over the Chrome DevTools Protocol: a real browser's
cookies, redirects, Fetch Metadata and form submissions."""
import json
import os
import subprocess
import time
import urllib.request


def chromium_devtools(profile, home, timeout=20):
    """Headless Chromium with its own profile and HOME (whose NSS database trusts the test CA); yields the first
    page's DevTools WebSocket URL."""
    process = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
         "--disable-gpu", "--no-proxy-server", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "about:blank"],
        env={**os.environ, "HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    active = profile / "DevToolsActivePort"
    deadline = time.time() + timeout
    while not (active.exists() and active.read_text().count("\n") >= 1) and time.time() < deadline:
        time.sleep(0.1)
    port = active.read_text().split()[0]
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5))
    return process, next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


class DevTools:
    """Calls over the Chrome DevTools Protocol."""

    def __init__(self, socket):
        self.socket, self.next = socket, 0

    def call(self, method, **params):
        self.next += 1
        self.socket.send(json.dumps({"id": self.next, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=20))
            if message.get("id") == self.next:
                assert "error" not in message, message
                return message["result"]

    def open(self, url):
        """Navigates to `url` (page events on)."""
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def sign_in_at_provider(self, provider, subject="alice"):
        """What a person does on the provider's page: waits for it, and submits `subject`. Returns the page's URL
        (the authorization request)."""
        self.wait("location.href.startsWith(%s) && !!document.querySelector('input[name=sub]')"
                  % json.dumps(provider + "/oauth2/authorize?"))
        authorization = self.evaluate("location.href")
        self.evaluate("const sub = document.querySelector('input[name=sub]');"
                      f"sub.value = {json.dumps(subject)}; sub.form.submit(); true")
        return authorization

    def evaluate(self, expression):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait(self, expression, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.1)
        raise AssertionError(f"{expression} never held; at {self.evaluate('location.href')}: "
                             f"{self.evaluate('document.body && document.body.innerText')!r}")


def trusting_home(home, ca):
    """A HOME whose NSS database trusts `ca` (certutil), so Chromium verifies the test certificates, never ignores
    errors."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "detour-test", "-i", str(ca)],
                   check=True, capture_output=True)
    return home
