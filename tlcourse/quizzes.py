"""Self-check questions and flashcards for every lesson, and a text quiz for the terminal.

The content is data, one file per lesson, shipped with the package: ``tlcourse/content/quiz_NN.json``::

    {"questions": [{"prompt": "...", "options": ["...", "..."], "answer": 1,
                    "explanation": "...", "hint": "..."}],
     "flashcards": [{"term": "Head"},
                    {"front": "...", "back": "...", "kind": "fact"}]}

``answer`` is the index (from 0) of the right option as written; learners see the options in a
fixed shuffled order (:func:`_mixed`). A ``{"term": ...}`` card shows that entry of GLOSSARY.md,
so each definition is written once; the other cards are a "fact", a "mnemonic" or an "example".

A notebook shows them with ``tl.quiz_bank("01")`` and ``tl.flashcards("01")`` (``tlcourse.widgets``);
a terminal with ``tlcourse quiz 01`` or ``python -m tlcourse.quiz 01``. The answer logic lives in
:meth:`Question.check`, so every front end gives the same feedback.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

REVEAL_AFTER = 2  # wrong attempts after which a question shows its answer
CONTENT = Path(__file__).with_name("content")  # quiz_NN.json per lesson, and a copy of GLOSSARY.md
CLONE_GLOSSARY = Path(__file__).resolve().parent.parent / "GLOSSARY.md"  # the source, in a clone of the course
DESCRIPTION = "The self-check questions (or flashcards) of one lesson, in a terminal."
KINDS = ("fact", "mnemonic", "example")  # the cards a lesson's file writes out; "term" cards come from the glossary


@dataclass(frozen=True)
class Feedback:
    """What a learner sees after choosing an option."""

    correct: bool
    message: str
    revealed: bool = False  # True when the message gives the answer away


@dataclass(frozen=True)
class Question:
    """One single-choice question: ``answer`` is the index of the right option in ``options``."""

    prompt: str
    options: tuple[str, ...]
    answer: int
    explanation: str
    hint: str = ""

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise ValueError(f"A question needs at least two options; got {list(self.options)}.")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"The options of a question must differ; got {list(self.options)}.")
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer={self.answer} is not an index into the {len(self.options)} options.")

    def check(self, choice: int | str, attempt: int = 1) -> Feedback:
        """Feedback on ``choice`` (an option or its index) at the learner's ``attempt``-th try.

        A right answer gets the explanation. A wrong one gets the hint, and after
        ``REVEAL_AFTER`` wrong tries the right answer with its explanation.
        """
        index = self.options.index(choice) if isinstance(choice, str) else int(choice)
        if not 0 <= index < len(self.options):
            raise ValueError(f"choice={choice!r} is not one of the {len(self.options)} options.")
        if index == self.answer:
            return Feedback(True, f"Correct. {self.explanation}")
        if attempt >= REVEAL_AFTER:
            return Feedback(False, f"Not quite. The answer is: {self.options[self.answer]}. {self.explanation}", True)
        return Feedback(False, f"Not quite. {self.hint or 'Read the options again and try another one.'}")


def make_question(question: str, options, answer: int | str, explanation: str, hint: str = "") -> Question:
    """A :class:`Question` whose ``answer`` may be given as the right option's text or its index."""
    options = tuple(str(o) for o in options)
    if isinstance(answer, str):
        if answer not in options:
            raise ValueError(f"answer={answer!r} is not one of the options {list(options)}.")
        answer = options.index(answer)
    return Question(question, options, int(answer), explanation, hint)


@dataclass(frozen=True)
class Flashcard:
    """A card to recall: ``front`` is a term or a question, ``back`` the answer.

    ``kind`` is "term" (defined in GLOSSARY.md), "fact", "mnemonic" or "example" (a real-world case).
    """

    front: str
    back: str
    kind: str = "term"


def _mixed(question: Question) -> Question:
    """The same question with its options in a fixed pseudo-random order, so the answer's place gives nothing away."""
    order = list(range(len(question.options)))
    random.Random(zlib.crc32(question.prompt.encode())).shuffle(order)
    return replace(question, options=tuple(question.options[i] for i in order), answer=order.index(question.answer))



# ---------------------------------------------------------------- loading the content


class ContentError(ValueError):
    """A malformed lesson file or glossary; the message names the file and the entry."""


def glossary_path() -> Path:
    """The root GLOSSARY.md in a clone of the course, else the copy shipped in the package."""
    return CLONE_GLOSSARY if CLONE_GLOSSARY.is_file() else CONTENT / "GLOSSARY.md"


def glossary() -> dict[str, str]:
    """GLOSSARY.md as ``{term: definition}``, in plain text: no Markdown, no closing "Lesson 01." pointer."""
    path, entries = glossary_path(), {}
    for paragraph in path.read_text(encoding="utf-8").split("\n\n"):
        match = re.match(r"\*\*(.+?)\.\*\*\s+(.+)", paragraph.strip(), flags=re.S)
        if match:
            if match.group(1) in entries:
                raise ContentError(f"{path}: {match.group(1)!r} is defined twice.")
            text = re.sub(r"[`*]", "", " ".join(match.group(2).split()))
            entries[match.group(1)] = re.sub(r"\s*Lessons? \d+(?:(?:,| and|-) ?\d+)*\.$", "", text)
    return entries


def _entry(entry, where: str, fields: dict[str, type], optional: tuple[str, ...] = ()) -> dict:
    """``entry``, checked: an object with exactly ``fields`` (those in ``optional`` may be absent), each of its type."""
    if not isinstance(entry, dict):
        raise ContentError(f"{where}: expected an object {{...}}, got {type(entry).__name__}.")
    problems = [f"missing {f!r}" for f in fields if f not in entry and f not in optional]
    problems += [f"unknown key {f!r}" for f in entry if f not in fields]
    problems += [f"{f!r} should be a {t.__name__}" for f, t in fields.items() if f in entry and not isinstance(entry[f], t)]
    if problems:
        raise ContentError(f"{where}: {'; '.join(problems)}.")
    return entry


def _lesson_file(lesson: int | str) -> tuple[str, dict]:
    """The path of a lesson's data file (for messages) and its content, checked at the top level."""
    path = CONTENT / f"quiz_{lesson_key(lesson)}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ContentError(f"{path}: not valid JSON: {err}.") from None
    return str(path), _entry(data, str(path), {"questions": list, "flashcards": list})


def lessons() -> list[str]:
    """The lessons that have a data file: ``["01", "02", ...]``."""
    return sorted(path.stem.removeprefix("quiz_") for path in CONTENT.glob("quiz_*.json"))


def lesson_key(lesson: int | str) -> str:
    """``1``, ``"1"``, ``"01"`` and ``"01_transfer_learning_basics"`` all mean lesson ``"01"``."""
    match = re.match(r"^\s*(\d+)", str(lesson))
    key = match.group(1).zfill(2) if match else str(lesson)
    if key not in lessons():
        raise ValueError(f"No quiz for lesson {lesson!r}; there are quizzes for lessons {', '.join(lessons())}.")
    return key


def questions(lesson: int | str) -> list[Question]:
    """The self-check questions of one lesson, read from its data file."""
    path, data = _lesson_file(lesson)
    items = []
    for number, entry in enumerate(data["questions"], start=1):
        where = f"{path}, question {number}"
        entry = _entry(entry, where, {"prompt": str, "options": list, "answer": int, "explanation": str, "hint": str},
                       optional=("hint",))
        try:
            question = make_question(entry["prompt"], entry["options"], entry["answer"], entry["explanation"],
                                     entry.get("hint", ""))
        except ValueError as err:
            raise ContentError(f"{where}: {err}") from None
        items.append(_mixed(question))
    return items


def cards(lesson: int | str) -> list[Flashcard]:
    """The flashcards of one lesson: glossary terms, key facts, mnemonics and real-world examples."""
    path, data = _lesson_file(lesson)
    terms, deck = glossary(), []
    for number, entry in enumerate(data["flashcards"], start=1):
        where = f"{path}, flashcard {number}"
        if isinstance(entry, dict) and "term" in entry:
            term = _entry(entry, where, {"term": str})["term"]
            if term not in terms:
                raise ContentError(f"{where}: {term!r} is not a term of {glossary_path()}.")
            deck.append(Flashcard(term, terms[term]))
        else:
            entry = _entry(entry, where, {"front": str, "back": str, "kind": str})
            if entry["kind"] not in KINDS:
                raise ContentError(f"{where}: kind {entry['kind']!r} is not one of {', '.join(KINDS)} "
                                   '(a term card is {"term": ...}, defined in GLOSSARY.md).')
            deck.append(Flashcard(entry["front"], entry["back"], entry["kind"]))
    return deck


# ---------------------------------------------------------------- the terminal front end

def _read(prompt: str, ask) -> str | None:
    try:
        return ask(prompt)
    except EOFError:
        return None


def _parse_choice(text: str, n: int) -> int | None:
    """'2' or 'b' -> index 1; None when the text names no option."""
    text = text.strip().lower()
    if text.isdigit() and 1 <= int(text) <= n:
        return int(text) - 1
    if len(text) == 1 and "a" <= text < chr(ord("a") + n):
        return ord(text) - ord("a")
    return None


def run_text_quiz(lesson: int | str, ask=input, say=print) -> tuple[int, int]:
    """Ask a lesson's questions in a terminal; returns ``(right at the first try, questions)``."""
    items = questions(lesson)
    say(f"Lesson {lesson_key(lesson)} self-check: {len(items)} questions. Answer with a letter or a number.\n")
    first_try = 0
    for number, question in enumerate(items, start=1):
        say(f"{number}. {question.prompt}")
        for i, option in enumerate(question.options):
            say(f"   {chr(ord('a') + i)}) {option}")
        attempt = 0
        while True:
            text = _read("your answer: ", ask)
            if text is None:
                say(f"\nStopped. {first_try} of {number - 1} right at the first try.")
                return first_try, len(items)
            choice = _parse_choice(text, len(question.options))
            if choice is None:
                say(f"   Type a letter a-{chr(ord('a') + len(question.options) - 1)} or a number.")
                continue
            attempt += 1
            feedback = question.check(choice, attempt)
            say(f"   {feedback.message}\n")
            if feedback.correct:
                first_try += attempt == 1
            if feedback.correct or feedback.revealed:
                break
    say(f"{first_try} of {len(items)} right at the first try.")
    return first_try, len(items)


def run_text_flashcards(lesson: int | str, ask=input, say=print) -> int:
    """Show a lesson's flashcards one by one: press Enter to turn a card; returns how many were seen."""
    deck = cards(lesson)
    say(f"Lesson {lesson_key(lesson)} flashcards: {len(deck)} cards. Recall the back, then press Enter.\n")
    for number, card in enumerate(deck, start=1):
        say(f"[{number}/{len(deck)}] ({card.kind}) {card.front}")
        if _read("   ... ", ask) is None:
            return number - 1
        say(f"   {card.back}\n")
    return len(deck)


def answer_key(lesson: int | str) -> str:
    """Every question of a lesson with its answer and explanation, as plain text."""
    lines = []
    for number, q in enumerate(questions(lesson), start=1):
        lines.append(f"{number}. {q.prompt}\n   answer: {q.options[q.answer]}\n   {q.explanation}")
    return "\n\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``tlcourse quiz`` and ``python -m tlcourse.quiz``: ``NN [--flashcards | --answers]``."""
    parser.add_argument("lesson", help=f"lesson number: {', '.join(lessons())}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--flashcards", action="store_true", help="go through the lesson's flashcards instead")
    mode.add_argument("--answers", action="store_true", help="print every question with its answer, no prompts")
    return parser


def run(lesson: int | str, flashcards: bool = False, answers: bool = False) -> int:
    """What ``tlcourse quiz`` and ``python -m tlcourse.quiz`` do; returns the exit status (2: no such lesson)."""
    try:
        lesson_key(lesson)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if answers:
        print(answer_key(lesson))
    elif flashcards:
        run_text_flashcards(lesson)
    else:
        run_text_quiz(lesson)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tlcourse.quiz 01 [--flashcards | --answers]``, the same as ``tlcourse quiz 01 ...``."""
    parser = argparse.ArgumentParser(prog="python -m tlcourse.quiz", description=DESCRIPTION)
    args = add_arguments(parser).parse_args(argv)
    return run(args.lesson, flashcards=args.flashcards, answers=args.answers)
