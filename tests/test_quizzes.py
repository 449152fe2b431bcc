"""The quiz content as data: every lesson's file well formed, term cards from GLOSSARY.md, clear errors, the CLI."""
from __future__ import annotations

import copy
import fnmatch
import io
import json
import sys
from pathlib import Path

import pytest

from tlcourse import cli, quizzes

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(quizzes.CONTENT.glob("quiz_*.json"))


# ---------------------------------------------------------------- the content of every lesson

def test_every_lesson_notebook_has_a_data_file():
    notebooks = {path.name[:2] for path in (ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")}
    assert notebooks and set(quizzes.lessons()) == notebooks
    assert [f"quiz_{key}.json" for key in quizzes.lessons()] == [path.name for path in FILES]


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_a_lesson_file_is_well_formed(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    terms = quizzes.glossary()
    assert set(data) == {"questions", "flashcards"} and data["questions"] and data["flashcards"]
    for number, q in enumerate(data["questions"], start=1):
        where = f"{path.name}, question {number}"
        assert q["prompt"].strip() and q["explanation"].strip() and q["hint"].strip(), where
        assert len(q["options"]) >= 2 and all(o.strip() for o in q["options"]), where
        assert isinstance(q["answer"], int) and 0 <= q["answer"] < len(q["options"]), where
    for number, card in enumerate(data["flashcards"], start=1):
        where = f"{path.name}, flashcard {number}"
        if "term" in card:
            assert card["term"] in terms, f"{where}: {card['term']!r} is not defined in GLOSSARY.md"
        else:
            assert card["kind"] in quizzes.KINDS and card["front"].strip() and card["back"].strip(), where
            assert card["front"] not in terms, f"{where}: a glossary term; write {{\"term\": {card['front']!r}}}"
    lesson = path.stem.removeprefix("quiz_")
    assert len(quizzes.questions(lesson)) == len(data["questions"])  # and the loader accepts it
    assert len(quizzes.cards(lesson)) == len(data["flashcards"])


def test_a_question_keeps_its_answer_when_its_options_are_shuffled():
    path = quizzes.CONTENT / "quiz_01.json"
    written = json.loads(path.read_text(encoding="utf-8"))["questions"]
    shown = quizzes.questions("01")
    assert [q.prompt for q in shown] == [q["prompt"] for q in written]
    for q, w in zip(shown, written):
        assert sorted(q.options) == sorted(w["options"]) and q.options[q.answer] == w["options"][w["answer"]]


# ---------------------------------------------------------------- the glossary, one definition for each term

def test_term_cards_show_the_glossary_definition_in_plain_text():
    terms = quizzes.glossary()
    deck = [card for lesson in quizzes.lessons() for card in quizzes.cards(lesson) if card.kind == "term"]
    assert deck and all(card.back == terms[card.front] for card in deck)
    assert not any(mark in card.back for card in deck for mark in "`*")
    assert terms["Head"].endswith("(tl.replace_head).")  # the "Lesson 01." pointer is left to the glossary
    for required in ("Transfer learning", "Feature extraction", "Fine-tuning", "Head", "Backbone",
                     "Linear probe", "Data augmentation", "Hyperparameter"):
        assert required in {card.front for card in deck}


def test_the_glossary_shipped_in_the_package_is_a_copy_of_the_root_one():
    shipped = quizzes.CONTENT / "GLOSSARY.md"
    assert quizzes.glossary_path() == ROOT / "GLOSSARY.md"  # in a clone, the root file is the source
    assert shipped.read_bytes() == (ROOT / "GLOSSARY.md").read_bytes(), \
        "GLOSSARY.md changed: copy it into the package with  cp GLOSSARY.md tlcourse/content/GLOSSARY.md"


def test_an_installed_package_reads_its_own_copy_of_the_glossary(monkeypatch, tmp_path):
    in_clone = quizzes.cards("02")
    monkeypatch.setattr(quizzes, "CLONE_GLOSSARY", tmp_path / "GLOSSARY.md")  # site-packages has no such file
    assert quizzes.glossary_path() == quizzes.CONTENT / "GLOSSARY.md"
    assert quizzes.cards("02") == in_clone


def test_the_package_data_ships_every_content_file():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["tlcourse"]
    for path in quizzes.CONTENT.iterdir():
        name = path.relative_to(ROOT / "tlcourse").as_posix()
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), f"{name} is not in the package data"


# ---------------------------------------------------------------- a malformed file gets a clear error

GOOD = {"questions": [{"prompt": "2 + 2?", "options": ["3", "4"], "answer": 1, "explanation": "Four.", "hint": "Add."},
                      {"prompt": "3 + 3?", "options": ["6", "7"], "answer": 0, "explanation": "Six."}],
        "flashcards": [{"term": "Head"}, {"front": "Four", "back": "2 + 2", "kind": "fact"}]}


def _set(path, value):
    def change(data):
        *parents, last = path
        for key in parents:
            data = data[key]
        if value is KeyError:
            del data[last]
        else:
            data[last] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set(("questions", 1, "explanation"), KeyError), r"quiz_01\.json, question 2: missing 'explanation'"),
    (_set(("questions", 0, "hnit"), "typo"), r"question 1: unknown key 'hnit'"),
    (_set(("questions", 0, "answer"), 2), r"question 1: answer=2 is not an index"),
    (_set(("questions", 0, "options"), "3, 4"), r"question 1: 'options' should be a list"),
    (_set(("questions", 1, "options"), ["6", "6"]), r"question 2: The options of a question must differ"),
    (_set(("flashcards", 0, "term"), "Heads"), r"flashcard 1: 'Heads' is not a term of .*GLOSSARY\.md"),
    (_set(("flashcards", 1, "kind"), "term"), r"flashcard 2: kind 'term' is not one of fact, mnemonic, example"),
    (_set(("flashcards", 1), "Four"), r"flashcard 2: expected an object"),
    (_set(("flashcards",), KeyError), r"quiz_01\.json: missing 'flashcards'"),
])
def test_a_malformed_lesson_file_names_the_file_and_the_entry(monkeypatch, tmp_path, change, message):
    monkeypatch.setattr(quizzes, "CONTENT", tmp_path)
    data = copy.deepcopy(GOOD)
    (tmp_path / "quiz_01.json").write_text(json.dumps(data))
    assert len(quizzes.questions("01")) == 2 and len(quizzes.cards("01")) == 2  # the good file loads
    change(data)
    (tmp_path / "quiz_01.json").write_text(json.dumps(data))
    with pytest.raises(quizzes.ContentError, match=message):
        quizzes.questions("01")
        quizzes.cards("01")


def test_a_file_that_is_not_json_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(quizzes, "CONTENT", tmp_path)
    (tmp_path / "quiz_07.json").write_text('{"questions": [}')
    with pytest.raises(quizzes.ContentError, match=r"quiz_07\.json: not valid JSON: .*line 1 column 16"):
        quizzes.questions(7)


def test_a_term_defined_twice_in_the_glossary_is_refused(monkeypatch, tmp_path):
    glossary = tmp_path / "GLOSSARY.md"
    glossary.write_text("# Glossary\n\n**Head.** One. Lesson 01.\n\n**Head.** Two.\n")
    monkeypatch.setattr(quizzes, "CLONE_GLOSSARY", glossary)
    with pytest.raises(quizzes.ContentError, match="'Head' is defined twice"):
        quizzes.glossary()


# ---------------------------------------------------------------- tlcourse quiz and python -m tlcourse.quiz

def test_tlcourse_quiz_and_python_m_tlcourse_quiz_call_the_same_function(monkeypatch):
    calls = []
    monkeypatch.setattr(quizzes, "run", lambda *args, **kwargs: calls.append((args, kwargs)) or 0)
    for argv in (["03", "--answers"], ["1", "--flashcards"], ["05"]):
        assert cli.main(["quiz", *argv]) == 0 and quizzes.main(argv) == 0
        assert calls[-1] == calls[-2], argv
    assert calls[0] == (("03",), {"flashcards": False, "answers": True})
    assert calls[2] == (("1",), {"flashcards": True, "answers": False})


def test_tlcourse_quiz_prints_the_answers_and_refuses_an_unknown_lesson(capsys):
    assert cli.main(["quiz", "03", "--answers"]) == 0
    out = capsys.readouterr().out
    assert out == quizzes.answer_key("03") + "\n"
    assert all(q.options[q.answer] in out for q in quizzes.questions("03"))
    assert cli.main(["quiz", "42"]) == 2
    assert "No quiz for lesson '42'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli.main(["quiz", "01", "--answers", "--flashcards"])
    assert stop.value.code == 2


def test_tlcourse_quiz_flashcards_reads_the_terminal(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n" * len(quizzes.cards("06"))))  # Enter turns each card
    assert cli.main(["quiz", "06", "--flashcards"]) == 0
    out = capsys.readouterr().out
    assert all(card.front in out and card.back in out for card in quizzes.cards("06"))
