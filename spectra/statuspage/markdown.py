"""Markdown for public pages: CommonMark without raw HTML, then sanitized with a tight allow-list.

Two layers: markdown-it renders with ``html`` off (raw HTML in the source is escaped as text), and
nh3 (ammonia) then keeps only the tags below. Links keep ``href`` only for http, https and mailto
and always get ``rel="nofollow noopener"``. No images at all: a page must not load (and so leak
its readers to) other hosts, and ``data:`` URLs have no scheme on the list anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from html import escape
from typing import Any, Final

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS: Final = frozenset(
    {
        "p", "br", "hr", "strong", "em", "code", "pre", "blockquote",
        "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: Final = {"*": set[str](), "a": {"href"}, "ol": {"start"}}  # "*": not even title/lang
URL_SCHEMES: Final = frozenset({"http", "https", "mailto"})
LINK_REL: Final = "nofollow noopener"


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.add_render_rule("image", _image_as_alt_text)
    return md


def _image_as_alt_text(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """Images render as their (escaped) alt text: nothing is fetched from other hosts."""
    return escape(self.renderInlineAsText(tokens[idx].children or [], options, env))


def sanitize_html(html: str) -> str:
    """Keep only the allow-listed tags, attributes and URL schemes."""
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
        url_relative="deny",
    )


def render_markdown(text: str) -> str:
    """``text`` (markdown) as safe HTML for the public page."""
    if not text:
        return ""
    return sanitize_html(_parser().render(text)).strip()
