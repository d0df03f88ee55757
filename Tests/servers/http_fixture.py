"""A small real HTTP(S) server on loopback for Detour's libcurl client tests.

Prints its port on the first line of stdout, then serves until killed or until stdin closes.
  --tls CERT KEY   serve https with this certificate
Routes: /json, /echo[/...], /redirect/<code>, /redirect-absolute/<code>, /big?bytes=N (streamed),
/sink (reads any body, chunked too, in pieces), /early (answers 413 without reading the body, then closes), /slow?ms=N,
/stats (hits per path,
client connections seen, most requests in flight at once).
"""
import hashlib
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

lock = threading.Lock()
stats = {"hits": {}, "connections": 0, "in_flight": 0, "max_in_flight": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with lock:
            stats["connections"] += 1

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":  # the length of the body a GET would get, and no body (RFC 9110 9.3.2)
            self.wfile.write(body)

    def handle_any(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        received = 0
        if url.path == "/early":  # an answer before the upload ends, as a server with a body limit gives
            self.close_connection = True
            self.reply(413, b"too large for the upstream", [("Connection", "close")])
            return
        if url.path == "/sink" and self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline().split(b";")[0] or b"0", 16):  # b"" once the peer is gone
                received += len(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            body = b""
        elif url.path == "/sink":  # read and discard in chunks: any size, flat memory
            while received < length:
                received += len(self.rfile.read(min(65536, length - received)))
            body = b""
        else:
            body = self.rfile.read(length) if length else b""
        with lock:
            stats["hits"][url.path] = stats["hits"].get(url.path, 0) + 1
            stats["in_flight"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            if url.path == "/json":
                self.reply(200, b'{"ok":true}', [("Content-Type", "application/json")])
            elif url.path == "/echo" or url.path.startswith("/echo/"):
                echo = {"method": self.command, "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "header_names": list(self.headers.keys()), "body": body.decode("utf-8", "replace"),
                        "body_sha256": hashlib.sha256(body).hexdigest(), "body_length": len(body)}
                self.reply(200, json.dumps(echo).encode(), [("Content-Type", "application/json")])
            elif url.path.startswith("/redirect/"):
                self.reply(int(url.path.rsplit("/", 1)[1]), b"", [("Location", "/json")])
            elif url.path.startswith("/redirect-absolute/"):
                port = self.server.server_address[1]
                self.reply(int(url.path.rsplit("/", 1)[1]), b"",
                           [("Location", f"http://127.0.0.1:{port}/json?from=upstream")])
            elif url.path == "/big":
                total = int(query["bytes"][0])
                self.send_response(200)
                self.send_header("Content-Length", str(total))
                self.end_headers()
                chunk = b"x" * 65536
                while total > 0:
                    self.wfile.write(chunk[:total])
                    total -= min(total, len(chunk))
            elif url.path == "/sink":
                self.reply(200, json.dumps({"received": received}).encode(), [("Content-Type", "application/json")])
            elif url.path == "/drip":  # a body in two parts, `ms` apart, as a streaming server sends one
                self.send_response(200)
                self.send_header("Content-Length", str(len(b"first") + len(b"second")))
                self.end_headers()
                self.wfile.write(b"first")
                self.wfile.flush()
                time.sleep(int(query["ms"][0]) / 1000)
                self.wfile.write(b"second")
            elif url.path == "/slow":
                time.sleep(int(query["ms"][0]) / 1000)
                self.reply(200, b"slow")
            elif url.path == "/stats":
                with lock:
                    self.reply(200, json.dumps(stats).encode(), [("Content-Type", "application/json")])
            else:
                self.reply(404, b"not found")
        finally:
            with lock:
                stats["in_flight"] -= 1

    do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) >= 4 and sys.argv[1] == "--tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        if len(sys.argv) == 5:  # mutual TLS: clients must present a certificate this CA signed
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(sys.argv[4])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # the test closes stdin (or exits) to stop the server


if __name__ == "__main__":
    main()
