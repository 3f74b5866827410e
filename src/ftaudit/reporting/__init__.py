"""ftaudit.reporting — the documents of a run, rendered from its RunRecord into RUN_DIR/docs/.

    from ftaudit.reporting import render_all
    render_all("runs/demo", answers="answers.yaml")    # model card, Annex XI/XII, summary, risk, IFU, BOM, HTML, PDF

Modules import only pydantic/yaml at the top; WeasyPrint and cyclonedx load when the PDF and the BOM are made.
"""


def render_all(*args, **kwargs):
    from ftaudit.reporting.render import render_all as _render_all

    return _render_all(*args, **kwargs)


__all__ = ["render_all"]
