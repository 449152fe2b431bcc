"""Widgets, quizzes and flashcards: right feedback, static views without a frontend, live widgets constructible."""
from __future__ import annotations

import html
import subprocess
import sys

import pytest

import tlcourse as tl
from tlcourse import quizzes, widgets


# ---------------------------------------------------------------- the answer logic

def _question():
    return quizzes.make_question("2 + 2?", ["3", "4", "5"], answer="4", explanation="Two and two make four.",
                                 hint="Count on your fingers.")


def test_a_right_answer_is_confirmed_with_the_explanation():
    feedback = _question().check(1)
    assert feedback.correct and "Two and two make four" in feedback.message
    assert _question().check("4").correct


def test_a_wrong_answer_gets_the_hint_first_and_the_answer_after_two_tries():
    first = _question().check(0, attempt=1)
    assert not first.correct and not first.revealed
    assert "Count on your fingers" in first.message and "The answer is" not in first.message
    second = _question().check(2, attempt=2)
    assert not second.correct and second.revealed and "The answer is: 4" in second.message


def test_a_question_refuses_an_answer_that_is_not_an_option():
    with pytest.raises(ValueError, match="not one of the options"):
        quizzes.make_question("?", ["a", "b"], answer="c", explanation="")
    with pytest.raises(ValueError, match="not an index"):
        quizzes.make_question("?", ["a", "b"], answer=2, explanation="")
    with pytest.raises(ValueError, match="differ"):
        quizzes.make_question("?", ["a", "a"], answer=0, explanation="")


def test_every_lesson_has_five_to_eight_well_formed_questions_and_some_flashcards():
    for lesson in ("01", "02", "03", "04", "05", "07"):
        items = quizzes.questions(lesson)
        assert 5 <= len(items) <= 8, lesson
        for q in items:
            assert q.prompt.strip() and q.explanation.strip() and q.hint.strip()
            assert q.check(q.answer).correct
            assert not any(q.check(i).correct for i in range(len(q.options)) if i != q.answer)
        assert len(quizzes.cards(lesson)) >= 5
    # the right answer is not always in the same place
    answers = [q.answer for lesson in quizzes.lessons() for q in quizzes.questions(lesson)]
    assert len(set(answers)) >= 3


def test_lessons_can_be_named_many_ways_and_unknown_ones_are_refused():
    assert quizzes.lesson_key(1) == quizzes.lesson_key("01_transfer_learning_basics") == "01"
    with pytest.raises(ValueError, match="No quiz for lesson"):
        quizzes.lesson_key("99")


# ---------------------------------------------------------------- choosing between widgets and static views

def test_the_environment_variable_and_the_argument_decide_before_the_guess(monkeypatch):
    monkeypatch.setenv(widgets.STATIC_ENV, "1")
    assert not widgets.is_interactive()
    assert widgets.is_interactive(True)
    monkeypatch.setenv(widgets.STATIC_ENV, "0")
    assert widgets.is_interactive()
    assert not widgets.is_interactive(False)
    monkeypatch.delenv(widgets.STATIC_ENV)
    assert not widgets.is_interactive()  # plain python: no kernel, no frontend


class _Kernel:
    def __init__(self, metadata):
        self.metadata = metadata

    def get_parent(self, channel):
        return {"header": {"msg_type": "execute_request"}, "metadata": self.metadata, "content": {}}


def test_the_guess_tells_a_frontend_from_a_headless_runner(monkeypatch):
    import IPython

    shell = type("Shell", (), {})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    shell.kernel = _Kernel({"cellId": "c1", "deletedCells": []})  # what JupyterLab sends
    assert widgets.frontend_attached()
    shell.kernel = _Kernel({})  # what nbval, nbclient and papermill send
    assert not widgets.frontend_attached()


# ---------------------------------------------------------------- static views

def test_static_quiz_shows_question_options_and_a_folded_answer():
    view = widgets.quiz("2 + 2?", ["3", "4"], answer=1, explanation="Four.", interactive=False)
    assert isinstance(view, widgets.StaticView)
    assert "2 + 2?" in repr(view) and "answer: b) 4" in repr(view)
    assert "<details>" in view._repr_html_() and "a) 3</div>" in view._repr_html_()


def test_static_quiz_bank_and_flashcards_list_every_item():
    bank = tl.quiz_bank("01", interactive=False)
    assert all(q.prompt[:40] in repr(bank) for q in quizzes.questions("01"))
    deck = tl.flashcards(3, interactive=False)
    assert all(c.front in repr(deck) for c in quizzes.cards("03"))
    assert deck._repr_html_().count("<tr>") == len(quizzes.cards("03")) + 1


def _rows():
    rows = []
    for seed in range(3):
        for size, base in ((5, 0.6), (20, 0.7), (None, 0.8)):
            rows.append({"strategy": "from scratch", "per_class": size, "seed": seed, "accuracy": base - 0.1 + 0.01 * seed})
            rows.append({"strategy": "feature extraction", "per_class": size, "seed": seed, "accuracy": base + 0.01 * seed})
    return rows


def test_static_data_size_explorer_plots_the_whole_curve_and_lists_every_size():
    view = tl.data_size_explorer(_rows(), interactive=False)
    text = repr(view)
    assert text.splitlines()[0].startswith("5/class") and text.splitlines()[-1].startswith("full")
    assert "feature extraction 81.0 +/- 1.0 (3 seeds)" in text
    assert '<img alt="test accuracy' in view._repr_html_() and "base64," in view._repr_html_()


def test_data_size_explorer_shows_seconds_as_seconds_not_percent():
    rows = [{**row, "seconds": 0.5} for row in _rows()]
    assert "from scratch 0.5 +/- 0.0 (3 seeds)" in repr(tl.data_size_explorer(rows, metric="seconds", interactive=False))


def test_data_size_explorer_names_a_missing_column():
    with pytest.raises(ValueError, match="'per_class'"):
        tl.data_size_explorer([{"strategy": "x", "seed": 0, "accuracy": 0.5}], interactive=False)


@pytest.fixture()
def tiny_model():
    tl.seed_everything(0)
    return tl.SmallCNN(num_classes=2, width=4)


def test_static_freezing_explorer_measures_every_stage_and_leaves_the_model_alone(tiny_model):
    view = tl.freezing_explorer(tiny_model, input_size=32, batch_size=2, interactive=False)
    rows = [line.split() for line in repr(view).splitlines()[2:]]
    assert [r[0] for r in rows] == list(tl.stages(tiny_model))
    trainable = [int(r[1].replace(",", "")) for r in rows]
    assert trainable[0] == tl.count_parameters(tiny_model) and trainable == sorted(trainable, reverse=True)
    assert all(float(r[3]) > 0 for r in rows)
    assert tl.count_parameters(tiny_model, trainable_only=True) == tl.count_parameters(tiny_model)


def test_unfreezing_cost_counts_the_parameters_that_train(tiny_model):
    row = widgets.unfreezing_cost(tiny_model, "stage4", input_size=32, batch_size=2, repeats=1)
    parts = tl.stages(tiny_model)
    assert row["trainable"] == tl.count_parameters(parts["stage4"]) + tl.count_parameters(parts["classifier"])
    assert row["seconds"] > 0
    assert all(p.grad is None for p in tiny_model.parameters())


# ---------------------------------------------------------------- live widgets, built without a frontend

def test_quiz_widget_answers_each_click_at_once():
    widget = widgets.quiz("2 + 2?", ["3", "4", "5"], answer="4", explanation="Four.", hint="Fingers.", interactive=True)
    assert widget.feedback.value == ""
    widget.choices.value = 0
    assert "Fingers." in widget.feedback.value and not widget.solved
    widget.choices.value = 1
    assert "Correct. Four." in widget.feedback.value and widget.solved and widget.attempts == 2


def test_quiz_bank_widget_keeps_score():
    bank = tl.quiz_bank("02", interactive=True)
    first = bank.questions[0]
    first.choices.value = first.question.answer
    assert "1 of 6 right at the first try" in bank.score.value
    second = bank.questions[1]
    second.choices.value = (second.question.answer + 1) % len(second.question.options)
    second.choices.value = second.question.answer
    assert "1 of 6 right at the first try; 2 solved" in bank.score.value


def test_flashcards_widget_turns_and_moves():
    deck = tl.flashcards("01", interactive=True)
    first = quizzes.cards("01")[0]
    assert html.escape(first.front) in deck.card.value and html.escape(first.back) not in deck.card.value
    deck.flip()
    assert html.escape(first.back) in deck.card.value
    deck.next()
    assert quizzes.cards("01")[1].front in deck.card.value and not deck.showing_back
    deck.previous()
    deck.previous()
    assert quizzes.cards("01")[-1].front in deck.card.value


def test_freezing_explorer_widget_measures_the_chosen_stage(tiny_model):
    explorer = tl.freezing_explorer(tiny_model, input_size=32, batch_size=2, interactive=True)
    assert explorer.slider.options == tuple(list(tl.stages(tiny_model)))
    assert "unfreeze from classifier" in explorer.result.value
    explorer.slider.value = "stage3"
    assert "unfreeze from stage3" in explorer.result.value and "stage3" in explorer.measured
    assert tl.count_parameters(tiny_model, trainable_only=True) == tl.count_parameters(tiny_model)


def test_data_size_explorer_widget_redraws_for_the_chosen_size():
    explorer = tl.data_size_explorer(_rows(), interactive=True)
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert explorer.summary.value.startswith("<p>5/class")
    before = explorer.image.value
    explorer.slider.value = 2  # the third size: the full split
    assert "full:" in explorer.summary.value and explorer.image.value != before


# ---------------------------------------------------------------- the terminal quiz

def _scripted(answers):
    replies = iter(answers)

    def ask(prompt):
        try:
            return next(replies)
        except StopIteration:
            raise EOFError from None

    return ask


def test_terminal_quiz_scores_first_try_answers():
    items = quizzes.questions("04")
    letters = "abcdefgh"
    answers = [letters[q.answer] for q in items]
    answers[0] = letters[(items[0].answer + 1) % len(items[0].options)]  # wrong first, then right
    answers[1:1] = ["zz", str(items[0].answer + 1)]  # not an option (asked again), then right as a number
    said = []
    assert quizzes.run_text_quiz("04", ask=_scripted(answers), say=said.append) == (len(items) - 1, len(items))
    assert any("Type a letter" in line for line in said)


def test_terminal_quiz_stops_cleanly_at_end_of_input():
    said = []
    assert quizzes.run_text_quiz("01", ask=_scripted([]), say=said.append) == (0, len(quizzes.questions("01")))
    assert "Stopped." in said[-1]
    assert quizzes.run_text_flashcards("02", ask=_scripted(["", ""]), say=said.append) == 2


def test_python_m_tlcourse_quiz_runs_a_lesson_in_a_terminal():
    run = subprocess.run([sys.executable, "-m", "tlcourse.quiz", "03", "--answers"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert all(q.options[q.answer] in run.stdout for q in quizzes.questions("03"))
    assert quizzes.main(["42"]) == 2
