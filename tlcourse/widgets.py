"""Widgets that teach: quizzes, flashcards, a freezing explorer (lessons 01, 03) and a data-size explorer (lesson 04).

Every builder returns something to show as the last line of a cell:

* an ipywidget, when a live Jupyter frontend can render it (JupyterLab, Notebook 7, VS Code, Colab);
* otherwise a static view: HTML (and a plot) in a notebook or an HTML page, plain text in a terminal.

So the notebooks stay testable: under nbval, nbclient or ``tlcourse site build`` the same calls show
their static view. Which one you get is decided by :func:`is_interactive`:

1. the ``interactive=`` argument of each builder, when it is True or False;
2. else the environment variable ``TLCOURSE_STATIC``: ``1`` forces the static views (the test suite
   sets it), ``0`` forces widgets;
3. else :func:`frontend_attached`, a guess from the running kernel.
"""
from __future__ import annotations

import base64
import copy
import html
import io
import os
import sys
import time
from typing import Sequence

from .quizzes import Flashcard, Question, cards, lesson_key, make_question, questions

STATIC_ENV = "TLCOURSE_STATIC"

# ---------------------------------------------------------------- does anything render widgets?


def frontend_attached() -> bool:
    """Best guess whether a live Jupyter frontend is attached to this kernel (plumbing).

    Frontends that render widgets send metadata (such as ``cellId``) with every execute request;
    headless runners built on jupyter_client (nbval, nbclient, papermill, nbconvert) send none.
    Plain ``python`` and terminal IPython have no kernel at all.
    """
    if "google.colab" in sys.modules:
        return True
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    try:
        parent = kernel.get_parent("shell")  # ipykernel >= 6
    except Exception:  # an older or unusual kernel: fall back to the shell's copy
        parent = getattr(shell, "parent_header", None)
    return bool((parent or {}).get("metadata"))


def is_interactive(interactive: bool | None = None) -> bool:
    """Whether the builders here return live widgets (True) or static views (False); see the module docstring."""
    if interactive is not None:
        return bool(interactive)
    setting = os.environ.get(STATIC_ENV, "").strip().lower()
    if setting in ("1", "true", "yes", "on"):
        return False
    if setting in ("0", "false", "no", "off"):
        return True
    return frontend_attached()


class StaticView:
    """What a widget shows without a frontend: ``html`` in a notebook or web page, ``text`` anywhere else."""

    def __init__(self, text: str, html_: str) -> None:
        self.text, self.html = text, html_

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def _png_html(fig, alt: str) -> str:
    """A matplotlib figure as an embedded <img> (no file, no pyplot state left behind)."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(_png(fig)).decode()}"/>'


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def _figure(width: float, height: float, columns: int = 1):
    """A matplotlib Figure that pyplot does not track, so it is shown only where we put it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, columns, squeeze=False)[0]


# ---------------------------------------------------------------- quizzes (every lesson)

_LETTERS = "abcdefghij"


def _feedback_html(message: str, correct: bool) -> str:
    colour, mark = ("#1a7f37", "&#10004;") if correct else ("#b35900", "&#10008;")
    return f'<div style="color:{colour}">{mark} {html.escape(message)}</div>'


def _static_quiz(items: Sequence[Question], title: str = "") -> StaticView:
    texts, parts = [title] if title else [], [f"<h4>{html.escape(title)}</h4>"] if title else []
    for number, q in enumerate(items, start=1):
        options = "\n".join(f"   {_LETTERS[i]}) {o}" for i, o in enumerate(q.options))
        texts.append(f"{number}. {q.prompt}\n{options}\n   answer: {_LETTERS[q.answer]}) {q.options[q.answer]}. "
                     f"{q.explanation}")
        items_html = "".join(f'<div style="margin-left:1.5em">{_LETTERS[i]}) {html.escape(o)}</div>'
                             for i, o in enumerate(q.options))  # letters written out: page styles restyle <ol>
        parts.append(
            f'<div class="tl-quiz" style="margin-bottom:1em"><p><b>{number}. {html.escape(q.prompt)}</b></p>'
            f"{items_html}<details><summary>Answer</summary><p>{_LETTERS[q.answer]}) "
            f"{html.escape(q.options[q.answer])}. {html.escape(q.explanation)}</p></details></div>")
    return StaticView("\n\n".join(texts), "\n".join(parts))


def _quiz_widget(question: Question, number: int | None = None):
    """A single-choice question that answers each click at once (see :class:`QuizWidget`)."""
    import ipywidgets as w

    class QuizWidget(w.VBox):
        """Radio buttons and a feedback line; ``.choices``, ``.feedback``, ``.attempts``, ``.solved``."""

        def __init__(self) -> None:
            prefix = f"{number}. " if number is not None else ""
            self.question, self.attempts, self.solved, self.listeners = question, 0, False, []
            self.choices = w.RadioButtons(options=[(o, i) for i, o in enumerate(question.options)], value=None,
                                          layout=w.Layout(width="auto"))
            self.feedback = w.HTML("")
            self.choices.observe(self._answer, names="value")
            super().__init__([w.HTML(f"<b>{html.escape(prefix + question.prompt)}</b>"), self.choices, self.feedback],
                             layout=w.Layout(margin="0 0 12px 0"))
            self.add_class("tl-quiz")

        def _answer(self, change) -> None:
            if change["new"] is None:
                return
            self.attempts += 1
            result = question.check(change["new"], self.attempts)
            self.solved = self.solved or result.correct
            self.feedback.value = _feedback_html(result.message, result.correct)
            for listener in self.listeners:
                listener(self, result)

    return QuizWidget()


def quiz(question: str, options: Sequence[str], answer: int | str, explanation: str, hint: str = "",
         interactive: bool | None = None):
    """One single-choice self-check question with immediate feedback.

    ``answer`` is the right option's text or index. A wrong choice shows ``hint`` (and, after two
    wrong tries, the answer); a right one shows ``explanation``. Without a frontend: the question
    with its answer folded away. Example::

        quiz("What does requires_grad=False leave unfrozen?",
             ["nothing", "BatchNorm running statistics"], answer=1,
             explanation="Running statistics are buffers, not parameters.")
    """
    item = make_question(question, options, answer, explanation, hint)
    return _quiz_widget(item) if is_interactive(interactive) else _static_quiz([item])


def quiz_bank(lesson: int | str, interactive: bool | None = None):
    """All the self-check questions of a lesson (``"01"`` to ``"06"``), with a running score.

    The same questions run in a terminal with ``tlcourse quiz 01`` (or ``python -m tlcourse.quiz 01``).
    """
    items = questions(lesson)
    title = f"Lesson {lesson_key(lesson)}: check yourself ({len(items)} questions)"
    if not is_interactive(interactive):
        return _static_quiz(items, title)
    import ipywidgets as w

    widgets = [_quiz_widget(q, number) for number, q in enumerate(items, start=1)]
    score = w.HTML(f"<i>0 of {len(items)} right at the first try.</i>")

    def update(*_) -> None:
        first = sum(q.solved and q.attempts == 1 for q in widgets)
        done = sum(q.solved for q in widgets)
        score.value = f"<i>{first} of {len(items)} right at the first try; {done} solved.</i>"

    for item in widgets:
        item.listeners.append(update)
    box = w.VBox([w.HTML(f"<h4>{html.escape(title)}</h4>"), *widgets, score])
    box.questions, box.score = widgets, score
    return box


# ---------------------------------------------------------------- flashcards (every lesson)

def _card_html(card: Flashcard, back: bool, position: str) -> str:
    face = html.escape(card.back if back else card.front)
    colour = "#fff8e1" if back else "#e8f0fe"
    return (f'<div style="border:1px solid #999;border-radius:8px;padding:18px;min-height:90px;max-width:560px;'
            f'background:{colour};font-size:1.1em"><div style="color:#666;font-size:0.75em">{position} &middot; '
            f'{card.kind} &middot; {"back" if back else "front"}</div>{face}</div>')


def flashcards(lesson: int | str, interactive: bool | None = None):
    """A deck of flashcards for a lesson: GLOSSARY.md's terms, key facts, mnemonics and real-world examples.

    Turn a card to check your recall, then go to the next. Without a frontend: a table of every card.
    In a terminal: ``tlcourse quiz 01 --flashcards``.
    """
    deck = cards(lesson)
    title = f"Lesson {lesson_key(lesson)} flashcards ({len(deck)} cards)"
    if not is_interactive(interactive):
        rows = "".join(f"<tr><td><b>{html.escape(c.front)}</b></td><td>{html.escape(c.back)}</td>"
                       f"<td><i>{c.kind}</i></td></tr>" for c in deck)
        return StaticView(title + "\n" + "\n".join(f"- {c.front}: {c.back}" for c in deck),
                          f"<h4>{html.escape(title)}</h4><table><tr><th>front</th><th>back</th><th>kind</th></tr>"
                          f"{rows}</table>")
    import ipywidgets as w

    class FlashcardsWidget(w.VBox):
        """One card at a time; ``.flip()``, ``.next()``, ``.previous()`` do what the buttons do."""

        def __init__(self) -> None:
            self.deck, self.index, self.showing_back = deck, 0, False
            self.card = w.HTML()
            buttons = [w.Button(description=d, icon=i) for d, i in
                       (("Previous", "arrow-left"), ("Turn over", "refresh"), ("Next", "arrow-right"))]
            for button, action in zip(buttons, (self.previous, self.flip, self.next)):
                button.on_click(lambda _, act=action: act())
            super().__init__([w.HTML(f"<h4>{html.escape(title)}</h4>"), self.card, w.HBox(buttons)])
            self._draw()

        def _draw(self) -> None:
            self.card.value = _card_html(self.deck[self.index], self.showing_back,
                                         f"{self.index + 1} / {len(self.deck)}")

        def flip(self) -> None:
            self.showing_back = not self.showing_back
            self._draw()

        def next(self) -> None:
            self.index, self.showing_back = (self.index + 1) % len(self.deck), False
            self._draw()

        def previous(self) -> None:
            self.index, self.showing_back = (self.index - 1) % len(self.deck), False
            self._draw()

    return FlashcardsWidget()


# ---------------------------------------------------------------- freezing explorer (lessons 01 and 03)

def unfreezing_cost(model, stage: str, input_size: int = 160, batch_size: int = 8, repeats: int = 2) -> dict:
    """Freeze ``model``'s stages before ``stage``, then measure one training step (forward + backward).

    Works on ``model`` itself: pass a copy. Returns ``{"stage", "trainable", "total", "seconds"}``,
    the fastest of ``repeats`` timed steps on a random batch. Frozen stages below the first
    trainable one need no backward pass, which is why freezing more makes a step cheaper.
    """
    import torch

    from .freezing import freeze_until
    from .models import count_parameters

    freeze_until(model, stage)
    param = next(model.parameters())
    x = torch.randn(batch_size, 3, input_size, input_size, device=param.device)
    model.train()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        loss = model(x).float().logsumexp(dim=1).mean()  # any scalar will do: we time the work, not the loss
        loss.backward()
        if param.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    model.eval()
    return {"stage": stage, "trainable": count_parameters(model, trainable_only=True),
            "total": count_parameters(model), "seconds": best}


def _stage_strip(names: Sequence[str], first_trainable: str) -> str:
    """A row of boxes: frozen stages grey, trainable ones orange."""
    cut = list(names).index(first_trainable)
    boxes = "".join(
        f'<span style="display:inline-block;padding:3px 6px;margin:1px;border-radius:4px;font-size:0.85em;'
        f'background:{"#ffcc80" if i >= cut else "#cfd8dc"}">{html.escape(n)}</span>' for i, n in enumerate(names))
    return f"<div>{boxes}</div><div style='font-size:0.8em;color:#555'>grey: frozen &middot; orange: trains</div>"


def _cost_line(row: dict, full: dict | None, input_size: int, batch_size: int) -> str:
    share = 100 * row["trainable"] / row["total"]
    line = (f"unfreeze from {row['stage']}: {row['trainable']:,} of {row['total']:,} parameters train ({share:.2f}%); "
            f"one step (forward + backward, {batch_size} images at {input_size} px) took {row['seconds']:.3f} s")
    if full is not None and full["seconds"] > 0:
        line += f", {100 * row['seconds'] / full['seconds']:.0f}% of a step that trains everything"
    return line + "."


def freezing_explorer(model, input_size: int = 160, batch_size: int = 8, interactive: bool | None = None):
    """Choose the stage to unfreeze from; see how many parameters train and the measured step time.

    Works on a copy of ``model`` (yours is left as it is). Every stage from the chosen one up
    trains; the stages below it are frozen (``tl.freeze_until``). Without a frontend: one table
    row per stage, each with its measured step time. Example: ``tl.freezing_explorer(backbone)``.
    """
    from .models import stage_names

    work = copy.deepcopy(model)
    names = stage_names(work)
    unfreezing_cost(work, names[0], input_size, batch_size, repeats=1)  # warm-up: the first step is always slow
    measured: dict[str, dict] = {}

    def cost(stage: str) -> dict:
        if stage not in measured:
            measured[stage] = unfreezing_cost(work, stage, input_size, batch_size)
        return measured[stage]

    if not is_interactive(interactive):
        rows = [unfreezing_cost(work, stage, input_size, batch_size, repeats=1) for stage in names]
        full = rows[0]
        header = f"{'unfreeze from':<14}{'trainable':>12}{'share':>9}{'step (s)':>10}{'vs all':>8}"
        lines = [f"{r['stage']:<14}{r['trainable']:>12,}{100 * r['trainable'] / r['total']:>8.2f}%"
                 f"{r['seconds']:>10.3f}{100 * r['seconds'] / full['seconds']:>7.0f}%" for r in rows]
        caption = (f"One training step (forward + backward) on {batch_size} random images at {input_size} px, "
                   f"measured here, for each stage you could unfreeze from. Stages below it are frozen.")
        return StaticView(caption + "\n" + header + "\n" + "\n".join(lines),
                          f"<p>{html.escape(caption)}</p><pre>{html.escape(header)}\n{html.escape(chr(10).join(lines))}</pre>")
    import ipywidgets as w

    slider = w.SelectionSlider(options=names, value=names[-1], description="unfreeze from",
                               continuous_update=False, style={"description_width": "initial"},
                               layout=w.Layout(width="560px"))
    strip, result = w.HTML(), w.HTML()

    def show(*_) -> None:
        stage = slider.value
        strip.value = _stage_strip(names, stage)
        result.value = "<i>measuring one training step ...</i>"
        result.value = f"<p>{html.escape(_cost_line(cost(stage), cost(names[0]), input_size, batch_size))}</p>"

    slider.observe(show, names="value")
    show()
    box = w.VBox([slider, strip, result])
    box.slider, box.result, box.measured = slider, result, measured
    return box


# ---------------------------------------------------------------- data-size explorer (lesson 04)

def _size_label(size) -> str:
    return "full" if size is None or str(size).lower() in ("full", "all", "none") else f"{size}/class"


def _size_order(size) -> float:
    try:
        return float(size)
    except (TypeError, ValueError):
        return float("inf")  # None / "full" last


def results_table(results: Sequence[dict], metric: str = "accuracy") -> tuple[list, list, dict]:
    """``(strategies, sizes, values)`` where ``values[strategy, size]`` lists ``metric`` over seeds (plumbing)."""
    required = ("strategy", "per_class", metric)
    for i, row in enumerate(results):
        missing = [k for k in required if k not in row]
        if missing:
            raise ValueError(f"results[{i}] has no {', '.join(map(repr, missing))}. Each row must be a dict like "
                             f"{{'strategy': 'fine-tuning', 'per_class': 10, 'seed': 0, '{metric}': 0.83}} "
                             "(per_class None means the full training split).")
    if not results:
        raise ValueError("results is empty: run the experiments first (lesson 04).")
    strategies = list(dict.fromkeys(r["strategy"] for r in results))
    sizes = sorted(dict.fromkeys(r["per_class"] for r in results), key=_size_order)
    values: dict = {}
    for row in results:
        values.setdefault((row["strategy"], row["per_class"]), []).append(float(row[metric]))
    return strategies, sizes, values


def _scale(metric: str, values: dict) -> float:
    """100 for fractions such as accuracies (shown in %), 1 for anything else (seconds, counts)."""
    fractions = all(0 <= v <= 1 for runs in values.values() for v in runs)
    return 100.0 if fractions and metric not in ("seconds", "n_train") else 1.0


def _stats(values: list[float], scale: float) -> tuple[float, float]:
    import numpy as np

    array = scale * np.asarray(values)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def _data_size_figure(results, metric: str, selected=None):
    """The curve of every strategy over sizes (mean +/- std over seeds); with ``selected``, bars at that size."""
    import numpy as np

    strategies, sizes, values = results_table(results, metric)
    scale = _scale(metric, values)
    unit = " (%)" if scale == 100 else ""
    fig, axes = _figure(11 if selected is not None else 7, 4, 2 if selected is not None else 1)
    curve = axes[0]
    x = np.arange(len(sizes))
    for strategy in strategies:
        points = [(i, *_stats(values[(strategy, s)], scale)) for i, s in enumerate(sizes) if (strategy, s) in values]
        xs, means, stds = (np.array(c) for c in zip(*points))
        curve.errorbar(xs, means, yerr=stds, marker="o", capsize=4, label=strategy)
        curve.fill_between(xs, means - stds, means + stds, alpha=0.15)
    curve.set_xticks(x, [_size_label(s) for s in sizes])
    curve.set_xlabel("training images per class")
    curve.set_ylabel(f"test {metric.replace('_', ' ')}{unit}")
    curve.grid(alpha=0.3)
    curve.legend()
    curve.set_title("mean +/- std over seeds")
    if selected is not None:
        index = sizes.index(selected)
        curve.axvspan(index - 0.3, index + 0.3, color="gold", alpha=0.3)
        bars = axes[1]
        for i, strategy in enumerate(strategies):
            runs = scale * np.asarray(values.get((strategy, selected), []))
            if len(runs):
                mean, std = _stats(list(runs / scale), scale)
                bars.bar(i, mean, yerr=std, capsize=6, color=f"C{i}", alpha=0.6)
                bars.plot(np.full(len(runs), i), runs, "k.", label="one seed" if i == 0 else None)
        bars.set_xticks(range(len(strategies)), strategies)
        low = min(scale * min(v) for v in values.values())
        bars.set_ylim(max(0.0, low - 5 * (scale / 100)), None)
        bars.set_ylabel(f"test {metric.replace('_', ' ')}{unit}")
        bars.set_title(f"{_size_label(selected)}: every seed")
        bars.grid(alpha=0.3, axis="y")
        bars.legend()
    fig.tight_layout()
    return fig


def _size_summary(results, metric: str, size) -> str:
    strategies, _, values = results_table(results, metric)
    scale = _scale(metric, values)
    parts = []
    for strategy in strategies:
        if (strategy, size) in values:
            mean, std = _stats(values[(strategy, size)], scale)
            parts.append(f"{strategy} {mean:.1f} +/- {std:.1f} ({len(values[(strategy, size)])} seeds)")
    return f"{_size_label(size)}: " + "; ".join(parts)


def data_size_explorer(results: Sequence[dict], metric: str = "accuracy", interactive: bool | None = None):
    """A slider over training-set sizes that redraws the strategies' results (lesson 04).

    ``results`` is a list of rows, one per run, as ``tl.curves.data_efficiency_curve`` returns them::

        {"strategy": "fine-tuning", "per_class": 10, "seed": 0, "accuracy": 0.83, ...}

    ``per_class`` is the number of training images per class (``None`` means the full split);
    runs with the same strategy and size but different seeds are averaged (mean +/- std).
    ``metric`` picks another column, e.g. ``"balanced_accuracy"`` or ``"seconds"``.
    Without a frontend: the whole curve and a table of every size.
    """
    _, sizes, _ = results_table(results, metric)
    if not is_interactive(interactive):
        text = "\n".join(_size_summary(results, metric, s) for s in sizes)
        fig = _data_size_figure(results, metric)
        return StaticView(text, _png_html(fig, f"test {metric} against training-set size")
                          + f"<pre>{html.escape(text)}</pre>")
    import ipywidgets as w

    slider = w.SelectionSlider(options=[(_size_label(s), i) for i, s in enumerate(sizes)], value=0,
                               description="training set", continuous_update=False,
                               style={"description_width": "initial"}, layout=w.Layout(width="560px"))
    image, summary = w.Image(format="png"), w.HTML()

    def show(*_) -> None:
        size = sizes[slider.value]  # the slider holds positions: None (the full split) is not a valid value
        image.value = _png(_data_size_figure(results, metric, size))
        summary.value = f"<p>{html.escape(_size_summary(results, metric, size))}</p>"

    slider.observe(show, names="value")
    show()
    box = w.VBox([slider, image, summary])
    box.slider, box.image, box.summary = slider, image, summary
    return box
