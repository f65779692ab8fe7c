"""Who may look at and change the mappings from the Airflow UI, and the CSRF check on every change.

Permission rule (asked of Airflow's configured auth manager, so it follows whatever roles it has):

- **look** (the page, the CSV export): an authenticated user the auth manager lets see the Airflow UI at all
  (``requires_access_view(AccessView.WEBSITE)``). Simple auth manager: viewer, user, op, admin.
- **change** (every POST: vendor links, code maps, deletes, imports, requeues): a user who may *edit connections*
  (``is_authorized_connection(method="PUT")``, the same permission the Exact consent routes need). Simple auth
  manager: op and admin. The check is done here rather than with ``requires_access_connection("PUT")`` because
  that dependency reads the request body as JSON when ``[core] multi_team`` is on, and these are HTML forms.

Both accept the api-server's ``_token`` login cookie (the page is shown in an iframe of the Airflow UI, same
origin) and ``Authorization: Bearer <jwt>``; no credentials → 401, a bad token → 403, too small a role → 403.

CSRF (every POST): a *signed double-submit token*. The page sets a random nonce in the cookie ``mlc_csrf``
(HttpOnly, SameSite=Strict, path = the app's mount point) and puts ``HMAC(key, user id | nonce)`` into each form
(hidden field ``csrf_token``). A POST is accepted only when the form's token matches the cookie's nonce *and* the
logged-in user, and when its ``Origin`` (or, without one, its ``Referer``) names this host. Another site can
neither read the cookie nor the page, so it cannot build the token; SameSite=Strict keeps the cookie off
cross-site requests, and Airflow's own login cookie is SameSite=Lax. The key is derived from Airflow's
``[api] secret_key`` (the same on every api-server instance, as Airflow already requires).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, Form, HTTPException, Request, status
from fastapi.responses import Response

CSRF_COOKIE = "mlc_csrf"
CSRF_FIELD = "csrf_token"
EDIT_ROLES_TEXT = "op or admin (the Airflow permission to edit connections)"


@dataclass(frozen=True)
class Actor:
    """The logged-in Airflow user behind a request (what audit rows name)."""

    id: str
    name: str
    role: str | None
    can_edit: bool

    def who(self) -> str:
        return f"{self.name} ({self.role})" if self.role else self.name


class CsrfRefused(Exception):
    """A change without a valid CSRF token or from another origin."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def may_edit(user: Any) -> bool:
    """The one rule for changes: the auth manager lets this user edit connections."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails

    return bool(get_auth_manager().is_authorized_connection(method="PUT", details=ConnectionDetails(), user=user))


def _actor(user: Any) -> Actor:
    return Actor(
        id=str(user.get_id()),
        name=str(user.get_name()),
        role=getattr(user, "role", None),
        can_edit=may_edit(user),
    )


def build_guards() -> dict[str, Any]:
    """``{"viewer": dep, "editor": dep}``: FastAPI dependencies returning the :class:`Actor` (or refusing).

    Imported from Airflow when the app is built, i.e. inside the api-server."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user, requires_access_view

    website = requires_access_view(AccessView.WEBSITE)

    def viewer(_allowed: None = Depends(website), user: Any = Depends(get_user)) -> Actor:
        return _actor(user)

    def editor(user: Any = Depends(get_user)) -> Actor:
        actor = _actor(user)
        if not actor.can_edit:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"Forbidden: changing mappings needs the role {EDIT_ROLES_TEXT}; {actor.who()} may only look",
            )
        return actor

    return {"viewer": viewer, "editor": editor}


# ------------------------------------------------------------------------------------------------------------ CSRF
def _key() -> bytes:
    from airflow.configuration import conf

    secret = conf.get("api", "secret_key", fallback="") or ""
    if not secret:
        from ml_connector.settings import fernet_keys

        secret = fernet_keys()[-1]
    return hashlib.sha256(b"ml-connector csrf v1:" + secret.encode()).digest()


def _sign(*parts: str) -> str:
    return hmac.new(_key(), "|".join(parts).encode(), hashlib.sha256).hexdigest()


def csrf_nonce(request: Request) -> tuple[str, bool]:
    """The browser's CSRF nonce, and whether it is new (then :func:`set_csrf_cookie` must send it)."""
    nonce = request.cookies.get(CSRF_COOKIE, "")
    if len(nonce) >= 32 and nonce.replace("-", "").replace("_", "").isalnum():
        return nonce, False
    return secrets.token_urlsafe(32), True


def csrf_token(actor: Actor, nonce: str) -> str:
    return _sign("form", actor.id, nonce)


def set_csrf_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        nonce,
        path=request.scope.get("root_path") or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def sign_message(text: str) -> str:
    """A signature for a message carried in a redirect (so a crafted link cannot show a fake confirmation)."""
    return _sign("flash", text)[:32]


def _same_origin(request: Request) -> str | None:
    """A problem when the request says it comes from another site (``Origin``, else ``Referer``)."""
    hosts = {request.headers.get("host", "").lower()}
    forwarded = request.headers.get("x-forwarded-host")
    if forwarded:
        hosts.add(forwarded.split(",")[0].strip().lower())
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() not in hosts:
            return f"the form was sent from another site ({origin})"
        return None
    referer = request.headers.get("referer")
    if referer and urlsplit(referer).netloc.lower() not in hosts:
        return "the form was sent from another site"
    return None


def check_csrf(request: Request, actor: Actor, token: str) -> None:
    """Raise :class:`CsrfRefused` unless ``token`` was issued by the mappings page to this user and browser."""
    problem = _same_origin(request)
    if problem:
        raise CsrfRefused(problem)
    nonce = request.cookies.get(CSRF_COOKIE, "")
    if not token or not nonce:
        raise CsrfRefused("the form carries no security token (it was not sent from the mappings page)")
    if not hmac.compare_digest(token, csrf_token(actor, nonce)):
        raise CsrfRefused("the form's security token is not valid for you (expired page, other login or other site)")


def editor_with_csrf(guards: dict[str, Any]) -> Any:
    """Dependency for POST routes: the editor check first (401/403), then the CSRF check."""
    editor = guards["editor"]

    def dependency(request: Request, actor: Actor = Depends(editor), csrf_token: str = Form("")) -> Actor:
        check_csrf(request, actor, csrf_token)
        return actor

    return dependency
