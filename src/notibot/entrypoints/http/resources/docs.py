"""``/openapi.json`` and the Swagger UI at ``/docs``, served entirely by the app.

The Swagger UI files come from the ``swagger-ui-bundle`` package and are served under
``/docs/static/`` (a fixed list of names), so the page works without internet access. The page
uses only local URLs; Swagger's online validator badge is switched off.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from html import escape
from importlib.resources.abc import Traversable
from typing import Any

from falcon.asgi import Request, Response

from notibot.domain import NotFound
from notibot.entrypoints.http.middleware import PUBLIC
from notibot.entrypoints.http.openapi import TAG_DOCS, endpoint
from notibot.entrypoints.http.schemas import OpenApiDocument

#: Files of the swagger-ui-bundle package that /docs/static/{name} serves, with their type.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="{static}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{static}/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="{static}/favicon-16x16.png" sizes="16x16">
  <style>html {{ box-sizing: border-box; }} body {{ margin: 0; }}</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <script src="{static}/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: {spec_url},
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      plugins: [SwaggerUIBundle.plugins.DownloadUrl],
      layout: "StandaloneLayout"
    }});
  </script>
</body>
</html>
"""


def _swagger_ui_dir() -> Traversable:
    from swagger_ui_bundle import swagger_ui_path  # imported on first use: no work at import

    return swagger_ui_path


def _js_string(value: str) -> str:
    """``value`` as a JavaScript string literal that is safe inside a ``<script>`` element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


class OpenApi:
    """``GET /openapi.json``: the OpenAPI document, built once and served as is."""

    access = {"GET": PUBLIC}

    def __init__(self, document: Callable[[], dict[str, Any]]) -> None:
        self._document = document
        self._body: bytes | None = None

    @endpoint(tag=TAG_DOCS, operation_id="openapi", response=OpenApiDocument)
    async def on_get(self, req: Request, resp: Response) -> None:
        """OpenAPI document

        This API described in OpenAPI 3.0.
        """
        if self._body is None:
            self._body = json.dumps(self._document(), ensure_ascii=False).encode()
        resp.content_type = "application/json"
        resp.data = self._body


class DocsPage:
    """``GET /docs``: Swagger UI over ``/openapi.json``."""

    access = {"GET": PUBLIC}

    @endpoint(tag=TAG_DOCS, operation_id="docs")
    async def on_get(self, req: Request, resp: Response) -> None:
        """Swagger UI

        An HTML page that explores this API; it needs no internet access.
        """
        root = req.root_path.rstrip("/")
        resp.content_type = "text/html; charset=utf-8"
        resp.text = _PAGE.format(title="notibot API", static=escape(f"{root}/docs/static"),
                                 spec_url=_js_string(f"{root}/openapi.json"))


class DocsAsset:
    """``GET /docs/static/{name}``: one file of Swagger UI (see :data:`ASSETS`)."""

    access = {"GET": PUBLIC}

    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {}

    async def on_get(self, req: Request, resp: Response, name: str) -> None:
        """Serve the asset ``name``; an unknown name answers 404 ``asset_not_found``."""
        if name not in ASSETS:
            raise NotFound("asset", name)
        data = self._cache.get(name)
        if data is None:
            data = await asyncio.to_thread((_swagger_ui_dir() / name).read_bytes)
            self._cache[name] = data
        resp.content_type = ASSETS[name]
        resp.data = data
        resp.cache_control = ["public", "max-age=86400"]
