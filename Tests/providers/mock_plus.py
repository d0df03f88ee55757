"""oidc-provider-mock, the end-to-end tests' OpenID provider, with two things a real provider does that the mock
does not: sending back-channel logout tokens, and verifying `private_key_jwt` client assertions (RFC 7523).

Usage: python Tests/providers/mock_plus.py PORT [CLIENT_PUBLIC_KEY_PEM]
Prints "ready" once it serves. Alice signs in as with the plain mock. Besides the provider's own endpoints:
- POST /test/logout-token with a JSON object of claims (and optionally "header": {...}) answers a logout token
  signed with the provider's own signing key, the one its JWKS publishes: what a provider POSTs to a relying
  party's back-channel logout URI. The claims are sent as given, so tests can leave any of them out.
- With CLIENT_PUBLIC_KEY_PEM, the token endpoint accepts `private_key_jwt`: an assertion signed by that key, with
  iss = sub = the client id, aud = the token endpoint, an unexpired exp and a jti not seen before.
"""
import os
import sys

import flask
import werkzeug.serving
from authlib.jose import jwt
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwk
from oidc_provider_mock import _app, app as provider_app
from oidc_provider_mock._storage import User

ALICE = {"email": "alice@example.com", "groups": ["admins", "sre"], "preferred_username": "alice"}


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, public_key_pem, token_endpoint):
        super().__init__()
        self.key = jwk.import_key(public_key_pem)
        self.token_endpoint = token_endpoint
        self.seen = set()

    def get_audiences(self):
        return [self.token_endpoint]

    def validate_jti(self, claims, jti):
        if jti in self.seen:
            return False
        self.seen.add(jti)
        return True

    def resolve_client_public_key(self, client):
        return self.key


def main():
    port = int(sys.argv[1])
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    app = provider_app(require_nonce=True, user_claims=[User(sub="alice", claims=ALICE)])

    if len(sys.argv) > 2:
        with open(sys.argv[2]) as file:
            assertion = PrivateKeyJWT(file.read(), f"http://127.0.0.1:{port}/oauth2/token")
        for grant in (_app.AuthorizationCodeGrant, _app.RefreshTokenGrant):
            grant.TOKEN_ENDPOINT_AUTH_METHODS = [*grant.TOKEN_ENDPOINT_AUTH_METHODS, "private_key_jwt"]
        registered = []

        @app.before_request
        def accept_assertions():
            server = flask.g._authlib_authorization_server
            if server not in registered:
                server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, assertion)
                registered.append(server)

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
