"""report.pdf, rendered from report.html by WeasyPrint (pure Python over pango; no browser needed).

Chosen over headless Chromium: a pip install of a few MB against a ~300 MB browser, and about a second to render
the report here. The PDF metadata carries the record's time, not the render time, so re-rendering the same record
gives the same document content.
"""

from __future__ import annotations

from ftaudit.errors import RuntimeFailure, first_line


def render_pdf(html_text: str) -> bytes:
    try:
        import weasyprint
    except ImportError:
        raise RuntimeFailure("report.pdf needs WeasyPrint: pip install 'ftaudit[docs]' (or pass --format without "
                             "pdf)") from None
    import logging

    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # font-substitution chatter is not the user's problem
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    try:
        return weasyprint.HTML(string=html_text).write_pdf()
    except Exception as exc:  # a renderer bug must not leave a half-written PDF or a traceback
        raise RuntimeFailure(f"report.pdf could not be rendered: {exc.__class__.__name__}: "
                             f"{first_line(exc)}") from exc
