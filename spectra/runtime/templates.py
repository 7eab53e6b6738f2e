"""The one way we make Jinja environments: a package's own `templates/` folder plus the shared base.

Autoescaping is on for everything but `.txt` templates (plain-text mail parts), and for templates built
from strings; templates are files of ours, never built from user input. `_base.html` (in this package's
`templates/`) is the skeleton every HTML page extends.
"""

from __future__ import annotations

from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape


def environment(package: str, **options: Any) -> Environment:
    """An environment for `package`'s templates (`package/templates/`), falling back to the shared ones."""
    loader = ChoiceLoader([PackageLoader(package, "templates"), PackageLoader("spectra.runtime", "templates")])
    return Environment(
        loader=loader,
        autoescape=select_autoescape(disabled_extensions=("txt",), default_for_string=True, default=True),
        auto_reload=False,
        **options,
    )
