"""The lab's guard: its own page only, on known host names, behind the token when one is set."""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

log = logging.getLogger(__name__)

TOKEN_SETTING = "DCML_BOT_LOCAL__TOKEN"
LOGIN = "/local/login"
COOKIE = "dcml_lab"
COOKIE_DAYS = 30
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAME_ORIGIN = {"same-origin", "none"}  # Sec-Fetch-Site values of the page itself, or typed
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
# Framing would let another page trick clicks on the lab's buttons (clickjacking). Referrers
# stay home (paper sites learn no member names), but "no-referrer" would make Origin "null".
HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; form-action 'self'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
STALE = (
    "<!doctype html><title>Refused</title><p>{reason}</p>"
    '<p><a href="/">Open the lab</a> and try again from its page (a page opened before the bot '
    "restarted is out of date).</p>"
)

Endpoint = Callable[[Request], Awaitable[Response]]


class LabExposed(Exception):
    """The lab would answer beyond this machine without a token."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return bool((mapped or address).is_loopback)


def host_name(header: str | None) -> str | None:
    """The host of a ``Host`` header, lower case, without port or brackets; None if malformed."""
    match = _HOST.fullmatch(header or "")
    return match.group(1).strip("[]").lower() if match else None


@dataclass(frozen=True)
class LabOptions:
    """Where the lab is served and who may use it (the token unwrapped by the app)."""

    bind: str = "127.0.0.1"
    hosts: tuple[str, ...] = ()
    token: str | None = field(default=None, repr=False)


class LabGuard:
    """Host allow-list, same-origin and CSRF checks, and the token login, for the lab's routes."""

    def __init__(self, options: LabOptions, templates: Jinja2Templates) -> None:
        beyond = [h for h in (options.bind, *options.hosts) if not is_loopback(h)]
        if beyond and not options.token:
            raise LabExposed(
                f"the local lab would answer on {', '.join(beyond)} (beyond this machine) without "
                f"a token: set {TOKEN_SETTING}, or serve it on 127.0.0.1 only"
            )
        self.templates = templates
        self.csrf = secrets.token_urlsafe(32)
        self.extra = {h.strip("[]").lower() for h in options.hosts}
        self.allowed = {*LOOPBACK_NAMES, options.bind.strip("[]").lower(), *self.extra}
        self._token = options.token
        self._cookie = _derive(options.token) if options.token else None

    def guarded(self, endpoint: Endpoint, *, login: bool = True) -> Endpoint:
        """``endpoint`` behind the checks; ``login=False`` for the login form's own post."""

        async def guarded(request: Request) -> Response:
            response = self._refusal(request, login=login) or await endpoint(request)
            response.headers.update(HEADERS)
            return response

        return guarded

    def csrf_ok(self, values: Mapping[str, str], request: Request) -> bool:
        """The page's CSRF token came back, in the form or (from scripts) in a header."""
        given = values.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
        return hmac.compare_digest(given.encode(), self.csrf.encode())

    def refused(self, request: Request, reason: str) -> Response:
        """A 403 that changes nothing, with a way back to the lab."""
        log.warning("lab: refused %s %s: %s", request.method, request.url.path, reason)
        return HTMLResponse(STALE.format(reason=html.escape(reason)), status_code=403)

    async def login(self, request: Request) -> Response:
        """``POST /local/login``: the token typed in the form; a cookie when it is right."""
        try:
            form = await request.form(max_files=0, max_fields=5, max_part_size=4096)
        except (MultiPartException, ClientDisconnect):
            return PlainTextResponse("malformed form", status_code=400)
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.csrf_ok(values, request):
            return self.refused(request, "This form is not from this lab's page.")
        if self._token is None:
            return RedirectResponse("/", status_code=303)
        if not _same(values.get("token", ""), self._token):
            return self.login_page(request, "That is not the lab's token.", 403)
        return self._logged_in(request, RedirectResponse("/", status_code=303))

    def login_page(self, request: Request, error: str | None = None, status: int = 401) -> Response:
        """The small form that asks for the token."""
        if error is not None:
            log.warning("lab: %s %s: %s", request.method, request.url.path, error)
        context: dict[str, Any] = {
            "error": error,
            "setting": TOKEN_SETTING,
            "login": LOGIN,
            "csrf": self.csrf,
        }
        return self.templates.TemplateResponse(request, "login.html", context, status_code=status)

    # --- the checks --------------------------------------------------------------------------

    def _refusal(self, request: Request, *, login: bool) -> Response | None:
        host = host_name(request.headers.get("host"))
        server = request.scope.get("server") or ("",)
        # An address literal equal to the socket's own cannot come from DNS rebinding.
        if host is None or (host not in self.allowed and host != str(server[0]).lower()):
            log.warning("lab: refused a request for host %r", request.headers.get("host"))
            return PlainTextResponse("Invalid host header", status_code=400)
        client = request.client.host if request.client else ""
        if self._token is None and not is_loopback(client):
            return self.refused(
                request, f"Without {TOKEN_SETTING} the lab answers this machine only."
            )
        if request.method == "POST":
            site = request.headers.get("sec-fetch-site")
            if site is not None and site not in SAME_ORIGIN:
                return self.refused(request, f"A post from another site ({site}).")
            origin = request.headers.get("origin")
            if origin is not None and not self._our_origin(origin, request):
                return self.refused(request, "A post from another origin.")
        if self._token is None or not login:
            return None
        supplied = request.query_params.get("token")
        if request.method == "GET" and supplied is not None:
            return self._token_in_url(request, supplied)
        if _same(request.cookies.get(COOKIE, ""), self._cookie or ""):
            return None
        if request.method == "GET":
            return self.login_page(request)
        return self.refused(request, "Log in to the lab first.")

    def _our_origin(self, origin: str, request: Request) -> bool:
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            return False  # "null": a sandboxed frame, a data: URL, a privacy redirect
        if parts.netloc.lower() == request.headers.get("host", "").lower():
            return True
        # Behind a reverse proxy the Host may be rewritten; its public names are configured.
        return (parts.hostname or "") in self.extra

    def _token_in_url(self, request: Request, supplied: str) -> Response:
        if self._token is None or not _same(supplied, self._token):
            return self.login_page(request, "That is not the lab's token.", 403)
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + ("?" + urlencode(rest) if rest else "")
        return self._logged_in(request, RedirectResponse(target, status_code=303))

    def _logged_in(self, request: Request, response: Response) -> Response:
        assert self._cookie is not None
        response.set_cookie(
            COOKIE,
            self._cookie,
            max_age=COOKIE_DAYS * 86400,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response


def _derive(token: str) -> str:
    """The cookie's value: stands for the token without being it."""
    return hmac.new(token.encode(), b"dcml-bot local lab login", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
