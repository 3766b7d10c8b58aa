"""Flask's signed session cookie, without its cost on requests that carry none and set none.

Most requests are not a browser's: CI polling the gate, /healthz, a metrics scrape. Flask builds
a signing serializer for every request, cookie or not, and works out the cookie's settings on
every response; here neither happens unless a cookie came in or the session was touched.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class SessionCookieWhenSent(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SecureCookieSession, response: Response) -> None:
        # Flask itself writes nothing then: no cookie to set or delete, no Vary: Cookie.
        if session or session.modified or session.accessed:
            super().save_session(app, session, response)
