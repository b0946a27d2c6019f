"""The HTTP API: a Falcon ASGI app over the notibot services.

``create_app(container)`` builds the app; ``openapi_spec()`` returns its OpenAPI document
without building any service. Serve with ``notibot serve`` or any ASGI server, e.g.
``uvicorn --factory notibot.entrypoints.http:create_app``.
"""

from notibot.entrypoints.http.app import create_app, openapi_spec

__all__ = ["create_app", "openapi_spec"]
