"""The Falcon ASGI application: :func:`create_app` and :func:`openapi_spec`.

Resources receive their services in their constructors (falcon's ``asgilook`` style); the
services come from one :class:`~notibot.container.Notibot` over the container, which the
lifecycle middleware starts and stops with the server (ASGI lifespan).
"""

from __future__ import annotations

import copy
import functools
from typing import Any, cast

import falcon.asgi

from notibot.container import Container, Notibot, build_container
from notibot.entrypoints.http.errors import add_error_handlers
from notibot.entrypoints.http.middleware import AuthMiddleware, LifecycleMiddleware
from notibot.entrypoints.http.openapi import build_document
from notibot.entrypoints.http.resources.auth import Login, Me, Refresh, Register
from notibot.entrypoints.http.resources.customers import CustomerCollection, CustomerItem
from notibot.entrypoints.http.resources.docs import DocsAsset, DocsPage, OpenApi
from notibot.entrypoints.http.resources.health import Health, Readiness
from notibot.entrypoints.http.resources.imports import CustomerImport, ImportErrors, ImportStatus
from notibot.entrypoints.http.resources.messages import (
    MemoryStats,
    MessageHistory,
    MessageSend,
    MessageSession,
    MessageSessions,
)
from notibot.entrypoints.http.resources.notifications import (
    NotificationConfigCreate,
    NotificationConfigItem,
    NotificationConfigList,
    NotificationConfigRetryFailed,
    NotificationHistory,
    NotificationSend,
    NotificationStats,
    TaskRetryFailed,
    Unsubscribe,
)
from notibot.entrypoints.http.resources.prompts import (
    PromptRender,
    PromptTemplateCollection,
    PromptTemplateItem,
    PromptTemplateVersionList,
)
from notibot.entrypoints.http.resources.tasks import (
    TaskCancel,
    TaskCollection,
    TaskItem,
    TaskStats,
)


def routes(notibot: Notibot) -> list[tuple[str, object]]:
    """The route table: ``(uri_template, resource)`` with the services of ``notibot``.

    ``/tasks/stats`` and ``/customers/import`` are literal segments, which falcon's router
    prefers to the fields of ``/tasks/{job_id}`` and ``/customers/{customer_id}``.
    """
    auth, customers, jobs, imports = notibot.auth, notibot.customers, notibot.jobs, \
        notibot.imports
    campaigns, sender = notibot.campaigns, notibot.campaign_sender
    chat, prompts = notibot.chat, notibot.prompts
    return [
        ("/auth/login", Login(auth)),
        ("/auth/refresh", Refresh(auth)),
        ("/auth/me", Me()),
        ("/auth/register", Register(auth)),
        ("/customers", CustomerCollection(customers)),
        ("/customers/import", CustomerImport(imports)),
        ("/customers/import/{job_id}/status", ImportStatus(imports, jobs)),
        ("/customers/import/{job_id}/errors.csv", ImportErrors(imports)),
        ("/customers/{customer_id}", CustomerItem(customers)),
        ("/tasks", TaskCollection(jobs)),
        ("/tasks/stats", TaskStats(jobs)),
        ("/tasks/{job_id}", TaskItem(jobs)),
        ("/tasks/{job_id}/cancel", TaskCancel(jobs)),
        ("/tasks/{job_id}/retry-failed", TaskRetryFailed(sender)),
        ("/notifications/config", NotificationConfigCreate(campaigns)),
        ("/notifications/configs", NotificationConfigList(campaigns)),
        ("/notifications/config/{config_id}", NotificationConfigItem(campaigns)),
        ("/notifications/config/{config_id}/retry-failed",
         NotificationConfigRetryFailed(sender)),
        ("/notifications/send", NotificationSend(sender)),
        ("/notifications/history", NotificationHistory(sender)),
        ("/notifications/stats", NotificationStats(sender)),
        ("/unsubscribe", Unsubscribe(sender)),
        ("/messages/send", MessageSend(chat, notibot.chat_jobs)),
        ("/messages/history", MessageHistory(chat)),
        ("/messages/history/{session_id}", MessageSession(chat)),
        ("/messages/sessions", MessageSessions(chat)),
        ("/messages/memory/stats", MemoryStats(chat)),
        ("/prompts/templates", PromptTemplateCollection(prompts)),
        ("/prompts/templates/{template_id}", PromptTemplateItem(prompts)),
        ("/prompts/templates/{template_id}/versions", PromptTemplateVersionList(prompts)),
        ("/prompts/render", PromptRender(prompts)),
        ("/health", Health()),
        ("/health/ready", Readiness(notibot.health)),
        ("/openapi.json", OpenApi(openapi_spec)),
        ("/docs", DocsPage()),
        ("/docs/static/{name}", DocsAsset()),
    ]


def _falcon_app(notibot: Notibot, middleware: list[Any]) -> tuple[falcon.asgi.App,
                                                                   list[tuple[str, object]]]:
    app = falcon.asgi.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    add_error_handlers(app)
    table = routes(notibot)
    for template, resource in table:
        app.add_route(template, resource)
    return app, table


def create_app(container: Container | None = None) -> falcon.asgi.App:
    """Build the HTTP API over ``container`` (default: :func:`~notibot.container.
    build_container` with settings from the environment).

    Nothing starts here: the ASGI lifespan start-up runs :meth:`Notibot.start` (job queue,
    first admin) and shut-down runs :meth:`Notibot.stop`, so serve it with lifespan on
    (uvicorn's default) or use ``falcon.testing.ASGIConductor``.

    Raises:
        pydantic.ValidationError: the settings from the environment are invalid.
    """
    notibot = Notibot(container if container is not None else build_container())
    app, _ = _falcon_app(notibot, [LifecycleMiddleware(notibot), AuthMiddleware(notibot.auth)])
    return app


class _DocumentationOnly:
    """Stands in for :class:`Notibot` when the app is built only to be documented: every
    service is a placeholder that refuses to be used, so nothing is configured or opened."""

    def __getattr__(self, name: str) -> Any:
        return _Unavailable(name)


class _Unavailable:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        raise RuntimeError(f"{self._name}.{attribute}: this app only documents the API")


@functools.cache
def _document() -> dict[str, Any]:
    app, table = _falcon_app(cast(Notibot, _DocumentationOnly()), [])
    return build_document(app, table)


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the HTTP API (what ``GET /openapi.json`` serves).

    Needs no container, settings or I/O (``notibot openapi`` prints it). Returns a new dict
    on every call.
    """
    return copy.deepcopy(_document())
