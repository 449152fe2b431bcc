"""An executed HTML copy of the course, for reading without Jupyter and for the projector.

``tlcourse site build --out DIR`` runs every notebook in ``lessons/`` in a fresh kernel (offline;
the feature cache is reused, so only the first build pays for feature extraction), then writes
one HTML page per lesson with its outputs and plots embedded, the glossary and the guides as
HTML, and an ``index.html`` that links them all. Widgets show their static views (the kernel
gets ``TLCOURSE_STATIC=1``), because a static page cannot talk to a kernel.
"""
from __future__ import annotations

import html
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GUIDES = ("GLOSSARY.md", "BRING_YOUR_OWN_DATA.md")  # Markdown files next to lessons/ that get a page too

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }}
code, pre {{ background: #f5f5f5; }} .failed {{ color: #b00020; }} .muted {{ color: #666; font-size: 0.9em; }}
</style></head>
<body>
{body}
</body></html>
"""


@dataclass
class Page:
    """One lesson of the site: where it came from, where it went, and how its run went."""

    source: Path
    html: Path
    title: str
    seconds: float = 0.0
    error: str | None = None  # the first line of the error when a cell failed


def lesson_title(nb) -> str:
    """The first Markdown heading of a notebook (e.g. 'Lesson 01 · Transfer learning basics')."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def _kernel_manager():
    """A kernel on this very Python, with widgets in their static views (plumbing)."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="tlcourse site", language="python", resource_dir="",
                              env={"TLCOURSE_STATIC": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"})

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


def execute(nb, folder: Path, timeout: float) -> str | None:
    """Run every cell of ``nb`` in a fresh kernel started in ``folder``; the error message of a failed cell, or None.

    Outputs up to the failing cell are kept in ``nb``, so the page shows where it stopped.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, km=_kernel_manager(), timeout=timeout, allow_errors=False,
                            resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    except CellTimeoutError:
        return f"a cell ran longer than {timeout:.0f} s"
    except (CellExecutionError, DeadKernelError) as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        return lines[-1] if lines else type(err).__name__
    return None


def _rewrite_links(page: str, targets: dict[str, str]) -> str:
    """Point links to ``../GLOSSARY.md`` or ``02_feature_extraction.ipynb`` at their pages in the site."""
    def swap(match: re.Match) -> str:
        link = match.group(2)
        path, _, fragment = link.partition("#")
        target = targets.get(path.rsplit("/", 1)[-1])
        if target is None or "://" in path:
            return match.group(0)
        return f'{match.group(1)}"{target}{"#" + fragment if fragment else ""}"'

    return re.sub(r'(href=)"([^"]+)"', swap, page)


def markdown_page(source: Path, targets: dict[str, str]) -> str:
    """A Markdown file (the glossary, a guide) as a standalone HTML page."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    text = source.read_text(encoding="utf-8")
    title = next((l.lstrip("#").strip() for l in text.splitlines() if l.startswith("#")), source.stem)
    body = '<p class="muted"><a href="index.html">&larr; all lessons</a></p>' + markdown2html_mistune(text)
    return _rewrite_links(_PAGE.format(title=html.escape(title), body=body), targets)


def _index(pages: list[Page], guides: dict[str, str], executed: bool) -> str:
    rows = []
    for page in pages:
        status = (f'<span class="failed">failed: {html.escape(page.error)}</span>' if page.error
                  else (f"ran in {page.seconds:.0f} s" if executed else "as saved"))
        rows.append(f'<li><a href="{page.html.name}">{html.escape(page.title)}</a> '
                    f'<span class="muted">({html.escape(page.source.name)}, {status})</span></li>')
    extra = "".join(f'<li><a href="{name}">{html.escape(title)}</a></li>' for name, title in guides.items())
    how = "executed for this copy" if executed else "rendered as they were saved"
    body = (f"<h1>Transfer learning you can run, measure and grade</h1>"
            f"<p>The lessons of the course, {how} on {time.strftime('%Y-%m-%d %H:%M')}, with their outputs and "
            f"plots. To run them yourself: <code>python course.py lab</code>.</p>"
            f"<h2>Lessons</h2><ol>{''.join(rows)}</ol><h2>Study aids</h2><ul>{extra}</ul>")
    return _PAGE.format(title="tlcourse: the lessons", body=body)


def build(out: str | Path, lessons: str | Path = "lessons", execute_notebooks: bool = True, timeout: float = 600,
          log=print) -> list[Page]:
    """Write the site into ``out``: one page per notebook in ``lessons``, the guides, and ``index.html``.

    With ``execute_notebooks=False`` the notebooks are rendered with the outputs they were saved
    with. A lesson whose cell fails still gets a page (up to the error) and is marked failed in
    the index; check ``page.error``.
    """
    import nbformat
    from nbconvert import HTMLExporter

    lessons, out = Path(lessons), Path(out)
    sources = sorted(lessons.glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"No lesson notebooks (NN_name.ipynb) in {lessons.resolve()}: give the folder with "
                                "--lessons.")
    out.mkdir(parents=True, exist_ok=True)
    guide_files = [lessons.parent / name for name in GUIDES if (lessons.parent / name).is_file()]
    targets = {s.name: s.stem + ".html" for s in sources}
    targets.update({g.name: g.stem.lower() + ".html" for g in guide_files})
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    pages = []
    for number, source in enumerate(sources, start=1):
        nb = nbformat.read(source, as_version=4)
        page = Page(source, out / targets[source.name], lesson_title(nb) or source.stem)
        if execute_notebooks:
            log(f"[{number}/{len(sources)}] running {source.name} ...")
            start = time.perf_counter()
            page.error = execute(nb, source.parent, timeout)
            page.seconds = time.perf_counter() - start
            if page.error:
                log(f"    FAILED after {page.seconds:.0f} s: {page.error}")
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": page.title}})
        page.html.write_text(_rewrite_links(body, targets), encoding="utf-8")
        log(f"    wrote {page.html}")
        pages.append(page)
    guides = {}
    for guide in guide_files:
        (out / targets[guide.name]).write_text(markdown_page(guide, targets), encoding="utf-8")
        guides[targets[guide.name]] = guide.stem.replace("_", " ").capitalize()
    (out / "index.html").write_text(_index(pages, guides, execute_notebooks), encoding="utf-8")
    log(f"wrote {out / 'index.html'}: {len(pages)} lessons, {sum(p.error is not None for p in pages)} failed")
    return pages
