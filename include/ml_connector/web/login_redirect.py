"""Logged-out visitors of a plugin page go to Airflow's login page, and come back to the page they asked for.

Airflow's permission dependencies answer a request without a valid login with HTTP 401 ("Not authenticated",
"Token Expired") or 403 ("Invalid JWT token"). That is right for API clients, but a person who opens a bookmarked
console page sees raw JSON. Here a *browser page request* (GET/HEAD that accepts ``text/html`` and carries no
``Authorization`` header) with such an answer is redirected to the auth manager's login URL with ``next`` set to
the page (the login page itself only follows a ``next`` on this site). A 403 for a role that is too small is not a
login problem and stays a 403 page.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

LOGIN_DETAILS_403 = {"Invalid JWT token"}


def is_browser_page_request(request: Request) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and "text/html" in request.headers.get("accept", "")
        and "authorization" not in request.headers
    )


def needs_login(exc: StarletteHTTPException) -> bool:
    return exc.status_code == 401 or (exc.status_code == 403 and str(exc.detail) in LOGIN_DETAILS_403)


def login_url(request: Request) -> str:
    """The auth manager's login page with ``next`` = the requested page."""
    next_url = str(request.url)
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return str(get_auth_manager().get_url_login(next_url=next_url))
    except Exception:  # no auth manager here (unit tests): the simple auth manager's page
        log.debug("no auth manager; using /auth/login", exc_info=True)
        return "/auth/login?" + urlencode({"next": next_url})


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _login_or_error(request: Request, exc: StarletteHTTPException) -> Response:
        if needs_login(exc) and is_browser_page_request(request):
            return RedirectResponse(login_url(request), status_code=303)
        return await http_exception_handler(request, exc)
