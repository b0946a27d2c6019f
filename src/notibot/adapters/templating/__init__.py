"""User-written templates rendered with Jinja2 in a sandbox."""

from notibot.adapters.templating.jinja import Jinja2TemplateRenderer

__all__ = ["Jinja2TemplateRenderer"]
