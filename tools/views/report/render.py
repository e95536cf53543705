"""The report as one HTML page: the jinja2 templates of `templates/` filled with the model's sections.

The page's CSS and JavaScript are templates too, included inline, and the
flame graphs' data is embedded as JSON (`<` escaped, so no text of the log
can end the script element): the file opens anywhere, offline.
"""

from __future__ import annotations

import json
import os
import tempfile

import jinja2
import markupsafe

from ...errors import ToolError

TEMPLATE = "report.html.j2"


def _json(value) -> markupsafe.Markup:
    """`value` as JSON safe inside a <script> element (no `<`, `>` or `&` in it)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return markupsafe.Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _number(value) -> str:
    """A figure for people: integers with thousands separators, seconds to three places."""
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{value:,}"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("vprobe_tools.views.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["json"] = _json
    env.filters["number"] = _number
    return env


def render_html(page: dict) -> str:
    return environment().get_template(TEMPLATE).render(**page)


def write_report(path: str, html: str) -> None:
    """Write the page to `path` whole (through a temporary file beside it), or raise ToolError."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=folder)
    except OSError as e:
        raise ToolError(f"cannot write the report {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # as open() would have made it
        os.replace(temporary, path)
    except OSError as e:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise ToolError(f"cannot write the report {path}: {e.strerror or e}") from None
