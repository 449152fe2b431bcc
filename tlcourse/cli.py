"""The ``tlcourse`` command: ``doctor``, ``exercises build|check``, ``grade``, ``predict``, ``quiz``, ``site build``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import quizzes


def _doctor(args) -> int:
    from .tooling.doctor import run_doctor

    return 0 if run_doctor() else 1


def _course_folder(given: str | None, name: str) -> Path:
    """``given``, else ``./name``, else ``name`` next to the package (an editable install)."""
    if given:
        return Path(given)
    here = Path(name)
    beside = Path(__file__).resolve().parent.parent / name
    return here if here.is_dir() or not beside.is_dir() else beside


def _exercises(args) -> int:
    from .tooling import exercises

    solutions = _course_folder(args.solutions, "solutions")
    target = _course_folder(args.exercises, "exercises")
    if args.action == "build":
        if args.clean_solutions:
            for path in exercises.clean_solutions(solutions):
                print(f"cleaned {path}")
        changed = exercises.build(solutions, target)
        for path in changed:
            print(f"wrote {path}")
        print(f"{len(changed)} exercise notebook(s) changed in {target}/")
        return 0
    problems = exercises.check(solutions, target)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{target}/ is in sync with {solutions}/")
    return 1 if problems else 0


def _grade(args) -> int:
    from .grading import Gradebook, Limits, MixedLessons, Sandbox, SandboxUnavailable, Settings, grade

    limits = Limits(memory=int(args.memory_limit * 2**30) if args.memory_limit else None)
    sandbox = Sandbox(mode="none" if args.unsafe_no_sandbox else "auto", command=args.kernel_command, limits=limits)
    settings = Settings(cell_timeout=args.cell_timeout, submission_timeout=args.timeout, jobs=args.jobs,
                        lesson=args.lesson.zfill(2) if args.lesson else None,
                        exercises=_course_folder(args.exercises, "exercises"), sandbox=sandbox)
    if args.unsafe_no_sandbox and not args.kernel_command:
        print(f"tlcourse grade: WARNING, --unsafe-no-sandbox: {sandbox_risks()}", file=sys.stderr)
    book = Gradebook(Path(args.out), args.feedback)
    hide = [book.out.parent.resolve(), book.feedback_dir.resolve()]
    try:
        results = grade(args.submissions, settings, on_result=book.add, hide=hide)
    except (SandboxUnavailable, MixedLessons) as err:
        print(f"tlcourse grade: {err}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{r.total:>3} / {r.max_points:<3} {r.status:<8} {r.submission}")
    print(f"wrote {args.out} ({len(results)} rows) and feedback files in {book.feedback_dir}/")
    if results and all(r.status == "invalid" for r in results):
        print("tlcourse grade: no submission could be graded; read a feedback file to see why.", file=sys.stderr)
    return 0


def sandbox_risks() -> str:
    from .grading.sandbox import RISKS

    return RISKS + " Use it only for code you trust, or inside a throw-away container with no network."


def _predict(args) -> int:
    from . import deploy

    return deploy.run_cli(args)


def _quiz(args) -> int:
    return quizzes.run(args.lesson, flashcards=args.flashcards, answers=args.answers)


def _site(args) -> int:
    from .tooling import site

    try:
        pages = site.build(args.out, _course_folder(args.lessons, "lessons"), not args.no_execute, args.timeout)
    except FileNotFoundError as err:
        print(f"tlcourse site: {err}", file=sys.stderr)
        return 2
    return 1 if any(page.error for page in pages) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tlcourse", description="Tools of the transfer-learning course.")
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="check that the course is ready to run offline")
    doctor.set_defaults(func=_doctor)

    ex = sub.add_parser("exercises", help="generate exercises/ from solutions/, or check they are in sync")
    ex.add_argument("action", choices=["build", "check"])
    ex.add_argument("--solutions", help="folder of solution notebooks (default: solutions)")
    ex.add_argument("--exercises", help="folder of exercise notebooks (default: exercises)")
    ex.add_argument("--clean-solutions", action="store_true",
                    help="build: also clear outputs and kernel metadata of the solution notebooks")
    ex.set_defaults(func=_exercises)

    gr = sub.add_parser("grade", help="grade submitted exercise notebooks into a CSV gradebook")
    gr.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebooks, or folders of them")
    gr.add_argument("--out", required=True, help="the gradebook CSV to write")
    gr.add_argument("--jobs", type=int, default=1, help="submissions graded at the same time (default 1)")
    gr.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell (default 60)")
    gr.add_argument("--timeout", type=float, default=600.0,
                    help="hard limit in seconds per submission; its kernel is killed after it (default 600)")
    gr.add_argument("--lesson", help="the assignment's lesson, e.g. 01 (default: the lesson the submissions "
                                     "declare; a batch of several lessons is refused)")
    gr.add_argument("--exercises", help="folder of exercise notebooks, the grading templates (default: exercises)")
    gr.add_argument("--feedback", help="folder for the feedback files (default: <out>_feedback/)")
    gr.add_argument("--memory-limit", type=float, default=8.0, metavar="GIB",
                    help="address space per kernel in GiB (default 8; 0: no limit)")
    gr.add_argument("--kernel-command", metavar="TEMPLATE",
                    help="run each kernel through this command instead of bubblewrap (a container, say): "
                         "{kernel} is the kernel's command, {io} the folder it must see at the same path "
                         "(see INSTRUCTORS.md)")
    gr.add_argument("--unsafe-no-sandbox", action="store_true",
                    help="run the kernels without a sandbox, as your own user: only for code you trust")
    gr.set_defaults(func=_grade)

    pr = sub.add_parser("predict", help="classify image files with a model saved by tlcourse.deploy.save_model")
    pr.add_argument("model", metavar="MODEL", help="a model file written by tlcourse.deploy.save_model")
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="image files to classify")
    pr.add_argument("--json", action="store_true", help="print one JSON object per image instead of a sentence")
    pr.set_defaults(func=_predict)

    qz = sub.add_parser("quiz", help="a lesson's self-check questions (or flashcards) in the terminal")
    quizzes.add_arguments(qz)
    qz.set_defaults(func=_quiz)

    st = sub.add_parser("site", help="write an executed HTML copy of the lessons, with an index page")
    st.add_argument("action", choices=["build"])
    st.add_argument("--out", required=True, help="folder to write the HTML pages into")
    st.add_argument("--lessons", help="folder of lesson notebooks (default: lessons)")
    st.add_argument("--no-execute", action="store_true", help="render the notebooks with the outputs they were saved with")
    st.add_argument("--timeout", type=float, default=600.0, help="seconds per cell (default 600)")
    st.set_defaults(func=_site)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
