"""Markdown on public pages: CommonMark rendered, everything active neutralised."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from spectra.statuspage.markdown import render_markdown


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def live_tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """The real (not escaped) tags of ``html`` with their attributes."""
    parser = _Tags()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**bold** and *em*", "<p><strong>bold</strong> and <em>em</em></p>"),
        ("# Title", "<h1>Title</h1>"),
        ("- a\n- b", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>"),
        ("`x < y`", "<p><code>x &lt; y</code></p>"),
        ("[docs](https://example.com/d)", '<p><a href="https://example.com/d" rel="nofollow noopener">docs</a></p>'),
        ("[web](http://example.com)", '<p><a href="http://example.com" rel="nofollow noopener">web</a></p>'),
        ("[mail](mailto:ops@example.com)", '<p><a href="mailto:ops@example.com" rel="nofollow noopener">mail</a></p>'),
        (
            "<https://example.com>",
            '<p><a href="https://example.com" rel="nofollow noopener">https://example.com</a></p>',
        ),
        ("", ""),
    ],
)
def test_renders_commonmark(text: str, expected: str) -> None:
    assert render_markdown(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<SCRIPT SRC=https://evil.test/x.js></SCRIPT>",
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](  javascript:alert(1) )",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![x](data:image/png;base64,AAAA)",
        "![tracker](https://evil.test/pixel.png)",
        '<a href="https://example.com" onclick="alert(1)">x</a>',
        "<img src=x onerror=alert(1)>",
        '<div style="background:url(javascript:alert(1))">x</div>',
        "<iframe src=https://evil.test></iframe>",
        "[x](/relative/path)",
        "[x](ftp://example.com/file)",
    ],
)
def test_neutralises_active_content(text: str) -> None:
    tags = live_tags(render_markdown(text))
    for tag, attrs in tags:
        assert tag in {"p", "a"}, tags
        for name, value in attrs:
            assert name in {"href", "rel"}, tags
            if name == "href":
                assert (value or "").startswith(("https://", "http://", "mailto:")), tags
                assert value == "https://example.com", tags


def test_image_becomes_its_alt_text_and_nothing_is_fetched() -> None:
    assert render_markdown("![status *chart*](https://cdn.example.com/c.png)") == "<p>status chart</p>"


def test_links_keep_only_href_and_get_nofollow() -> None:
    html = render_markdown('[a](https://example.com "title")')
    assert html == '<p><a href="https://example.com" rel="nofollow noopener">a</a></p>'
