"""``tlcourse site build``: executed lessons become HTML pages with their plots, linked from an index."""
from __future__ import annotations

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tlcourse import cli
from tlcourse.tooling import site

PLOT = """import matplotlib.pyplot as plt
import tlcourse as tl
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1], [1, 0])
print("static widgets:", not tl.widgets.is_interactive())"""


@pytest.fixture()
def course(tmp_path):
    """A tiny course: two lessons (one plots, one fails half-way), and a glossary next to them."""
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (tmp_path / "GLOSSARY.md").write_text("# Glossary\n\n**Head.** The task-specific layers.\n")
    first = new_notebook(cells=[
        new_markdown_cell("# Lesson 01 · A plot\n\nWords: [glossary](../GLOSSARY.md#head) · "
                          "Next: [lesson 02](02_broken.ipynb) · [elsewhere](https://example.org/x.ipynb)"),
        new_code_cell(PLOT),
    ])
    second = new_notebook(cells=[
        new_markdown_cell("# Lesson 02 · It breaks"),
        new_code_cell("print('before', 'the error')"),  # source and output differ, to tell them apart
        new_code_cell("raise RuntimeError('this lesson is broken')"),
        new_code_cell("print('never', 'reached')"),
    ])
    nbformat.write(first, lessons / "01_a_plot.ipynb")
    nbformat.write(second, lessons / "02_broken.ipynb")
    (lessons / "notes.ipynb").write_text("not a lesson: no number")
    return tmp_path


@pytest.mark.slow
def test_site_build_runs_lessons_and_writes_pages_with_plots_and_working_links(course):
    out = course / "site"
    pages = site.build(out, course / "lessons", timeout=120, log=lambda *a: None)
    assert [p.html.name for p in pages] == ["01_a_plot.html", "02_broken.html"]
    first = (out / "01_a_plot.html").read_text()
    assert re.search(r'<img[^>]+src="data:image/png;base64,', first), "the plot is not embedded"
    assert "static widgets: True" in first  # the kernel runs with the widgets' static views
    assert 'href="glossary.html#head"' in first and 'href="02_broken.html"' in first
    assert 'href="https://example.org/x.ipynb"' in first  # links outside the course are left alone
    assert pages[0].error is None and "this lesson is broken" in pages[1].error
    broken = (out / "02_broken.html").read_text()
    assert "before the error" in broken and "never reached" not in broken
    index = (out / "index.html").read_text()
    for target in ("01_a_plot.html", "02_broken.html", "glossary.html"):
        assert f'href="{target}"' in index and (out / target).is_file()
    assert "Lesson 01 · A plot" in index and "failed" in index
    assert "<strong>Head.</strong>" in (out / "glossary.html").read_text()


def test_site_command_renders_saved_outputs_without_running_anything(course, tmp_path, capsys):
    lessons = course / "lessons"
    (lessons / "02_broken.ipynb").unlink()
    nb = nbformat.read(lessons / "01_a_plot.ipynb", as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="saved output\n")]
    nbformat.write(nb, lessons / "01_a_plot.ipynb")
    code = cli.main(["site", "build", "--out", str(tmp_path / "out"), "--lessons", str(lessons), "--no-execute"])
    assert code == 0
    assert "saved output" in (tmp_path / "out" / "01_a_plot.html").read_text()
    assert "rendered as they were saved" in (tmp_path / "out" / "index.html").read_text()


def test_site_command_explains_an_empty_lessons_folder(tmp_path, capsys):
    assert cli.main(["site", "build", "--out", str(tmp_path / "out"), "--lessons", str(tmp_path)]) == 2
    assert "No lesson notebooks" in capsys.readouterr().err
