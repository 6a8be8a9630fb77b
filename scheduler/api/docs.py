"""The OpenAPI document and Swagger UI (static files from the swagger-ui-bundle package)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from scheduler.api.bodies import JSON
from scheduler.api.keys import SWAGGER

SWAGGER_UI_DIR = Path(swagger_ui_bundle.swagger_ui_path)

# The page's one inline script, allowed by its hash and by nothing else.
_START = """
    window.ui = SwaggerUIBundle({url: "/swagger.json", dom_id: "#swagger-ui"});
  """
_START_HASH = base64.b64encode(hashlib.sha256(_START.encode()).digest()).decode()
# Swagger UI's stylesheet draws its icons from data: URLs; its React code sets styles through
# the DOM, which a policy does not restrict. Nothing may frame it: "Try it out" sends
# same-origin requests, which a framing page could lure a user into clicking.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src 'self' 'sha256-{_START_HASH}'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

_INDEX = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>job-scheduler API</title>
  <link rel="stylesheet" href="/swaggerui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/swaggerui/swagger-ui-bundle.js"></script>
  <script>{_START}</script>
</body>
</html>
"""


async def swagger_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SWAGGER], content_type=JSON)


async def swagger_ui(request: web.Request) -> web.Response:
    return web.Response(text=_INDEX, content_type="text/html")


async def swagger_ui_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/swaggerui/")
