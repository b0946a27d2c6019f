"""The :class:`~notibot.application.ports.TemplateRenderer` adapter: Jinja2 in a
:class:`jinja2.sandbox.ImmutableSandboxedEnvironment` (a SandboxedEnvironment that also
refuses to modify lists, dicts and sets) with :class:`jinja2.StrictUndefined`.

- :meth:`Jinja2TemplateRenderer.check` compiles a template (syntax errors, unknown filters and
  tests are reported with their line) and walks its syntax tree: every top-level variable
  must be one of the allowed names (found with :func:`jinja2.meta.find_undeclared_variables`,
  so loop variables, ``{% set %}`` names and macro arguments are fine), and an attribute or a
  constant subscript of a restricted variable (``customer.password``,
  ``customer["password"]``) must be one of its allowed attributes.
- :meth:`Jinja2TemplateRenderer.render` renders with the context given; ``autoescape=True``
  (HTML bodies) escapes every value that is not marked safe. ``None`` renders as an empty
  string, so an empty customer field does not print ``None``.

The sandbox refuses access to private attributes (``''.__class__``) and unsafe methods;
``range`` is capped by Jinja2, and this adapter also refuses ``*`` and ``**`` results that
would be absurdly large (``'x' * 10**9``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from notibot.application.ports import TemplateRenderer
from notibot.domain import InvalidInput

#: Largest string or list a template may build with ``*`` (characters or items).
MAX_REPEAT = 100_000
#: Largest exponent of ``**``.
MAX_EXPONENT = 100
#: Compiled templates kept per environment (a campaign send renders the same few templates
#: thousands of times).
CACHE_SIZE = 512


def _finalize(value: Any) -> Any:
    """``{{ None }}`` prints nothing."""
    return "" if value is None else value


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox (which also refuses to change lists, dicts and sets: the data of a send is
    shared by every recipient), with a cap on ``*`` and ``**``."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                        and len(seq) * times > MAX_REPEAT:
                    raise SecurityError(f"the result of * would be longer than {MAX_REPEAT}")
        return super().call_binop(context, operator, left, right)


class Jinja2TemplateRenderer(TemplateRenderer):
    """Sandboxed Jinja2 templates: one environment for text (no escaping) and one for HTML
    (autoescape). Both use StrictUndefined: a missing variable or key is an error, never an
    empty string. Compiled templates are cached (up to :data:`CACHE_SIZE` per environment).
    Stateless apart from the caches; safe to share."""

    def __init__(self) -> None:
        self._text = _Environment(undefined=StrictUndefined, autoescape=False,
                                  finalize=_finalize, keep_trailing_newline=True)
        self._html = _Environment(undefined=StrictUndefined, autoescape=True,
                                  finalize=_finalize, keep_trailing_newline=True)
        self._compiled_text = functools.lru_cache(maxsize=CACHE_SIZE)(
            functools.partial(_compile, self._text))
        self._compiled_html = functools.lru_cache(maxsize=CACHE_SIZE)(
            functools.partial(_compile, self._html))

    async def check(self, template: str, *, allowed: dict[str, set[str] | None],
                    field: str) -> None:
        try:
            tree = self._text.parse(template)
            self._text.compile(tree)  # unknown filters and tests fail here
        except TemplateSyntaxError as exc:
            raise InvalidInput(
                f"{field}: line {exc.lineno}: {exc.message}", code="invalid_template",
                details={"field": field, "line": exc.lineno, "message": exc.message},
            ) from None
        globals_ = set(self._text.globals)
        undeclared = meta.find_undeclared_variables(tree)
        for name in sorted(undeclared - set(allowed) - globals_,
                           key=lambda n: (_first_line(tree, n), n)):
            line = _first_line(tree, name)
            raise InvalidInput(
                f"{field}: line {line}: unknown variable {name!r} (known: "
                f"{', '.join(sorted(allowed))})", code="invalid_template",
                details={"field": field, "line": line, "name": name})
        for name, attribute, line in _attribute_uses(tree):
            known = allowed.get(name)
            if name not in undeclared or known is None or attribute in known:
                continue
            shown = ", ".join(sorted(known)) or "none"
            raise InvalidInput(
                f"{field}: line {line}: unknown variable '{name}.{attribute}' (known "
                f"attributes of {name}: {shown})", code="invalid_template",
                details={"field": field, "line": line, "name": f"{name}.{attribute}"})

    async def render(self, template: str, context: dict[str, Any], *,
                     autoescape: bool = False) -> str:
        try:
            compiled = (self._compiled_html if autoescape else self._compiled_text)(template)
        except TemplateSyntaxError as exc:
            raise InvalidInput(f"line {exc.lineno}: {exc.message}", code="template_error",
                               details={"line": exc.lineno, "message": exc.message}) from None
        try:
            return compiled.render(context)
        except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError,
                AttributeError) as exc:
            line = _template_line(exc.__traceback__)
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, TemplateError) \
                else str(exc.message or exc)
            where = f"line {line}: " if line is not None else ""
            raise InvalidInput(f"{where}{message}", code="template_error",
                               details={"line": line, "message": message}) from None


def _compile(environment: _Environment, template: str) -> Template:
    """``template`` compiled in ``environment``, its globals a plain dict: Jinja2 gives a
    template a ChainMap over the environment's globals, and copies it into a new context at
    every render, which is twice as slow as copying a dict (the globals never change here)."""
    compiled = environment.from_string(template)
    compiled.globals = dict(compiled.globals)
    return compiled


def _names(tree: nodes.Node) -> Iterator[nodes.Name]:
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load":
            yield node


def _first_line(tree: nodes.Node, name: str) -> int:
    """The line of the first use of variable ``name`` in ``tree``."""
    return min((node.lineno for node in _names(tree) if node.name == name), default=1)


def _attribute_uses(tree: nodes.Node) -> list[tuple[str, str, int]]:
    """``(variable, attribute, line)`` of every ``variable.attribute`` and
    ``variable["attribute"]`` in ``tree``, in line order."""
    uses: list[tuple[str, str, int]] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not isinstance(target, nodes.Name) or target.ctx != "load":
            continue
        if isinstance(node, nodes.Getattr):
            uses.append((target.name, node.attr, node.lineno))
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str):
            uses.append((target.name, node.arg.value, node.lineno))
    uses.sort(key=lambda use: use[2])
    return uses


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line where a rendering error happened: Jinja2 rewrites tracebacks so the
    template's frames carry its file name ``<template>`` and its line numbers."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
