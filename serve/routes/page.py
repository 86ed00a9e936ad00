"""``GET /``: the review page, and its static files (shipped in the package: no CDN, no network)."""

from __future__ import annotations

from pathlib import Path

from litestar import Controller, MediaType, Response, get
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

static_files = create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False)


class PageController(Controller):
    @get("/", include_in_schema=False, sync_to_thread=False)
    def page(self) -> Response[bytes]:
        return Response((STATIC_DIR / "index.html").read_bytes(), media_type=MediaType.HTML)
