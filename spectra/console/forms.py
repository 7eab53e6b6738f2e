"""The form a console page was POSTed: `Console.page` reads the body once (bounded: spectra.runtime.forms),
checks its CSRF field, and keeps the parsed form on the request for the page's handler."""

from __future__ import annotations

from starlette.requests import Request


def posted(request: Request) -> dict[str, list[str]]:
    """Every value of every field of the POSTed form (checkboxes repeat their name); {} for a GET."""
    form = getattr(request.state, "form", None)
    return form if isinstance(form, dict) else {}


def field(request: Request, name: str) -> str:
    """The first value of a POSTed field, "" when absent."""
    return (posted(request).get(name) or [""])[0]


def fields(request: Request) -> dict[str, str]:
    """The first value of each POSTed field."""
    return {name: values[0] for name, values in posted(request).items() if values}
