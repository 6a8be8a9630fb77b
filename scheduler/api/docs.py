"""The OpenAPI document and Swagger UI (static files from the swagger-ui-bundle package)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from scheduler.api.keys import SWAGGER

SWAGGER_UI_DIR = Path(swagger_ui_bundle.swagger_ui_path)

_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>job-scheduler API</title>
  <link rel="stylesheet" href="/swaggerui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/swaggerui/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/swagger.json", dom_id: "#swagger-ui"});
  </script>
</body>
</html>
"""


async def swagger_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SWAGGER], content_type="application/json")


async def swagger_ui(request: web.Request) -> web.Response:
    return web.Response(text=_INDEX, content_type="text/html")


async def swagger_ui_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/swaggerui/")
