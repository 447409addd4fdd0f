"""The web console's static assets (app/console/, package data). They are open: they hold no
data, and every datum the page shows comes from the API with the operator's own token
(docs/console.md). Only the known names are served, so no path reaches the file system."""

from pathlib import Path

from webob import Request, Response

from app.rest.http import ApiError, Query
from app.rest.router import Access, Route

CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"
CONTENT_TYPES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
# No inline script or style and nothing from elsewhere: a value the page shows that slipped
# into markup could not run. connect-src 'self': the page talks only to this API.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class ConsoleViews:
    def __init__(self, directory: Path = CONSOLE_DIR) -> None:
        self._directory = directory

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/console/", self.index, Access.OPEN),
            Route("GET", "/console/{asset}", self.asset, Access.OPEN),
        ]

    def index(self, request: Request, principal):
        return self.asset(request, principal, "index.html")

    def asset(self, request: Request, principal, asset: str):
        Query(request)
        content_type = CONTENT_TYPES.get(asset)
        if content_type is None:
            raise ApiError(404, f"no console asset {asset!r}", "asset")
        try:
            body = (self._directory / asset).read_bytes()
        except OSError as err:
            raise ApiError(404, f"the console is not installed: {err.strerror}") from None
        response = Response(body=body, content_type=content_type, charset="utf-8")
        # Revalidated each time (ETag): an upgraded controller's page is never mixed with old JS.
        response.cache_control = "no-cache"
        response.md5_etag()
        response.conditional_response = True
        response.headers.update(
            {
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "X-Frame-Options": "DENY",
            }
        )
        return response
