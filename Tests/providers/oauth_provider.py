"""A real OAuth 2.0 / OpenID provider with RFC 7662 introspection for the end-to-end tests:
django-oauth-toolkit, configured here and served by Django on loopback.

Usage: python Tests/providers/oauth_provider.py PORT ACCESS_TOKEN_SECONDS
Prints "ready" once it serves. Data lives in a temporary SQLite file and is seeded with:
  - user alice (password "alice-password", alice@example.com),
  - "cli": a public client with the password grant, whose access tokens are opaque,
  - "jwt-cli": the same, whose access tokens are RS256 JWTs (RFC 9068 shape) signed with the provider's key,
    audience "orders-api",
  - "detour": a confidential client (secret "detour-secret") that Detour authenticates with to introspect.
Issuer: http://127.0.0.1:PORT/o (discovery, JWKS, token, introspect, revoke_token under /o/).
"""
import json
import os
import sys
import tempfile
import time

import django
from django.conf import settings
from jwcrypto import jwk, jwt

PORT = int(sys.argv[1])
ACCESS_TOKEN_SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
ISSUER = f"http://127.0.0.1:{PORT}/o"
KEY = jwk.JWK.generate(kty="RSA", size=2048)


def access_token(request):
    """Opaque tokens for every client but jwt-cli, which gets signed JWT access tokens."""
    if request.client_id != "jwt-cli":
        return os.urandom(24).hex()
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": request.user.get_username(), "aud": "orders-api", "client_id": request.client_id,
              "iat": now, "nbf": now, "exp": now + int(request.expires_in), "scope": " ".join(request.scopes),
              "email": request.user.email, "jti": os.urandom(8).hex()}
    token = jwt.JWT(header={"alg": "RS256", "typ": "at+jwt", "kid": KEY.thumbprint()}, claims=json.dumps(claims))
    token.make_signed_token(KEY)
    return token.serialize()


def refresh_token(request):
    return os.urandom(24).hex()


settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    SECRET_KEY=os.urandom(32).hex(),
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "oauth2_provider"],
    MIDDLEWARE=[],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                           "NAME": os.path.join(tempfile.mkdtemp(), "provider.sqlite3")}},
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # test data only: fast start
    OAUTH2_PROVIDER={
        "OIDC_ENABLED": True,
        "OIDC_RSA_PRIVATE_KEY": KEY.export_to_pem(private_key=True, password=None).decode(),
        "OIDC_ISS_ENDPOINT": ISSUER,
        "SCOPES": {"openid": "OpenID", "read": "Read", "introspection": "Introspect"},
        "ACCESS_TOKEN_EXPIRE_SECONDS": ACCESS_TOKEN_SECONDS,
        "ACCESS_TOKEN_GENERATOR": f"{__name__}.access_token",
        "REFRESH_TOKEN_GENERATOR": f"{__name__}.refresh_token",
    },
)
django.setup()

from django.urls import include, path  # noqa: E402

urlpatterns = [path("o/", include("oauth2_provider.urls", namespace="oauth2_provider"))]


def seed():
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    alice = User.objects.create_user("alice", "alice@example.com", "alice-password")
    for client_id in ("cli", "jwt-cli"):
        Application.objects.create(client_id=client_id, name=client_id, client_type=Application.CLIENT_PUBLIC,
                                   authorization_grant_type=Application.GRANT_PASSWORD, user=alice)
    Application.objects.create(client_id="detour", client_secret="detour-secret", name="detour",
                               client_type=Application.CLIENT_CONFIDENTIAL,
                               authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
                               redirect_uris="http://localhost/oauth2/callback")


if __name__ == "__main__":
    sys.modules[__name__] = sys.modules["__main__"]
    seed()
    from django.core.management import call_command
    print("ready", flush=True)
    call_command("runserver", f"127.0.0.1:{PORT}", use_reloader=False, use_threading=True, verbosity=0)
