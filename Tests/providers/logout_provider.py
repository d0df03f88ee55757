"""oidc-provider-mock, the end-to-end tests' OpenID provider, able to send back-channel logout tokens.

Usage: python Tests/providers/logout_provider.py PORT
Prints "ready" once it serves. Alice signs in as with the plain mock. Besides the provider's own endpoints:
POST /test/logout-token with a JSON object of claims (and optionally "header": {...}) answers a logout token
signed with the provider's own signing key, the one its JWKS publishes: what a provider POSTs to a relying
party's back-channel logout URI (OpenID Connect Back-Channel Logout 1.0). The claims are sent as given,
so tests can leave any of them out.
"""
import json
import os
import sys

import flask
import werkzeug.serving
from authlib.jose import jwt
from oidc_provider_mock import app as provider_app
from oidc_provider_mock._storage import User

ALICE = {"email": "alice@example.com", "groups": ["admins", "sre"], "preferred_username": "alice"}


def main():
    port = int(sys.argv[1])
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    app = provider_app(require_nonce=True, user_claims=[User(sub="alice", claims=ALICE)])

    @app.post("/test/logout-token")
    def logout_token():
        body = flask.request.get_json()
        key = flask.g.oidc_provider_mock_storage.jwk
        header = {"alg": "RS256", "kid": key.as_dict()["kid"], "typ": "logout+jwt", **body.pop("header", {})}
        header = {name: value for name, value in header.items() if value is not None}
        return jwt.encode(header, body, key.as_dict(is_private=True)).decode()

    server = werkzeug.serving.make_server("127.0.0.1", port, app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
