"""Who a visitor is, as the server says (docs/design.md §5, "On a shared machine").

A visitor is whoever holds a visitor cookie this server signed: `VisitorCookie`, an ASGI middleware,
gives every request without a valid one a new random id, signed with the server's secret
(HMAC-SHA256), and sets it as an HttpOnly, SameSite=Lax cookie on the response. The same request
already carries it, so the handler that runs for a first call knows its visitor too. A header cannot
name another visitor: an id is only taken with its signature.

The network address is used for rate limits alone (one address may hold many visitors, and one
visitor may drop its cookie to become another): the socket's peer, or, when that peer is a proxy
named in CSE_TRUSTED_PROXIES, the last address that proxy appended to X-Forwarded-For.

    visitor(request)   # "v-3f9c..." (an opaque key for job records) or None for calls from Python
    address(request)   # "a-81d2..." (hashed: records keep no IP)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from http.cookies import SimpleCookie
from pathlib import Path

COOKIE = "cse_visitor"
MAX_AGE_S = 30 * 24 * 3600  # a visitor keeps its jobs for a month of inactivity


def load_secret(folder: str | Path) -> bytes:
    """CSE_SECRET, else a random secret kept in <folder>/.secret (mode 0600), made on first start, so
    visitors keep their identity across restarts."""
    if os.environ.get("CSE_SECRET"):
        return os.environ["CSE_SECRET"].encode()
    path = Path(folder) / ".secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class Signer:
    def __init__(self, secret: bytes):
        self.secret = secret

    def sign(self, vid: str) -> str:
        return f"{vid}.{hmac.new(self.secret, vid.encode(), hashlib.sha256).hexdigest()[:32]}"

    def verify(self, value: str | None) -> str | None:
        """The visitor id of a cookie value this server signed, else None."""
        if not value or value.count(".") != 1:
            return None
        vid = value.partition(".")[0]
        return vid if len(vid) == 32 and hmac.compare_digest(self.sign(vid), value) else None

    def new(self) -> str:
        return self.sign(secrets.token_hex(16))


_signer: Signer | None = None


def configure(secret: bytes) -> Signer:
    global _signer
    _signer = Signer(secret)
    return _signer


def cookie_value(cookie_header: str) -> str | None:
    try:
        morsel = SimpleCookie(cookie_header).get(COOKIE)
    except Exception:  # noqa: BLE001 - a malformed Cookie header names no visitor
        return None
    return morsel.value if morsel is not None else None


class VisitorCookie:
    """ASGI middleware: every HTTP request leaves with a signed visitor cookie and arrives at the app
    with one (a new visitor's is added to the request's own Cookie header as well)."""

    def __init__(self, app, signer: Signer | None = None):
        self.app, self.signer = app, signer

    async def __call__(self, scope, receive, send):
        signer = self.signer or _signer
        if scope["type"] != "http" or signer is None:
            return await self.app(scope, receive, send)
        headers = [(k, v) for k, v in scope["headers"] if k != b"cookie"]
        cookie = "; ".join(v.decode("latin-1") for k, v in scope["headers"] if k == b"cookie")
        if signer.verify(cookie_value(cookie)) is not None:
            return await self.app(scope, receive, send)
        fresh = signer.new()
        cookie = f"{cookie}; {COOKIE}={fresh}" if cookie else f"{COOKIE}={fresh}"
        scope = {**scope, "headers": [*headers, (b"cookie", cookie.encode("latin-1"))]}
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        set_cookie = f"{COOKIE}={fresh}; Path=/; Max-Age={MAX_AGE_S}; HttpOnly; SameSite=Lax{secure}".encode()

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", set_cookie)]}
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


def _key(prefix: str, text: str) -> str:
    return f"{prefix}-" + hashlib.sha256(f"cse-{prefix}:{text}".encode()).hexdigest()[:16]


def visitor(request) -> str | None:
    """An opaque key of the visitor (from its signed cookie), the owner of its jobs; None for calls from
    Python (tests, scripts), which act as the server's owner. A request with no valid cookie (the
    middleware is not installed) is an anonymous visitor who owns nothing."""
    if request is None:
        return None
    headers = getattr(request, "headers", None) or {}
    vid = _signer.verify(cookie_value(headers.get("cookie", ""))) if _signer is not None else None
    return _key("v", vid) if vid else "v-anonymous"


def trusted_proxies() -> list:
    raw = [p for p in os.environ.get("CSE_TRUSTED_PROXIES", "").replace(",", " ").split() if p]
    try:
        return [ipaddress.ip_network(p, strict=False) for p in raw]
    except ValueError as e:
        raise ValueError(f"CSE_TRUSTED_PROXIES must list addresses or networks (e.g. 10.0.0.0/8): {e}") from None


def client_address(peer: str, forwarded: str, proxies: list) -> str:
    """The address that counts for rate limits: `peer` (the socket), unless it is a trusted proxy; then
    the entry that proxy appended to X-Forwarded-For (the last one), walking back over trusted proxies.
    Entries a client wrote itself (the first ones) are never taken."""
    chain = [peer] + [a.strip() for a in reversed(forwarded.split(",")) if a.strip()]
    for hop in chain:
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            return hop or "unknown"
        if not any(ip in net for net in proxies):
            return hop
    return chain[-1] or "unknown"


def address(request) -> str | None:
    """An opaque key of the caller's network address (see client_address); None for calls from Python."""
    if request is None:
        return None
    headers = getattr(request, "headers", None) or {}
    peer = getattr(getattr(request, "client", None), "host", "") or "unknown"
    return _key("a", client_address(peer, headers.get("x-forwarded-for", ""), trusted_proxies()))
