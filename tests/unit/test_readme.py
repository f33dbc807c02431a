"""The README starts with its two commands, the docs show examples/two_clients.py and
examples/run_from_python.py word for word, and the code explains itself without pointing
outside the repository, nor at issue numbers."""
from __future__ import annotations

import io
import re
import tokenize

from helpers.paths import ROOT


def test_the_docs_embed_the_two_clients_example_verbatim():
    example = (ROOT / "examples" / "two_clients.py").read_text()
    assert example.strip() in (ROOT / "docs" / "concepts.md").read_text()


def test_the_docs_embed_the_run_from_python_example_verbatim():
    example = (ROOT / "examples" / "run_from_python.py").read_text()
    assert example.strip() in (ROOT / "docs" / "running.md").read_text()


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    commands = [block.split("```", 1)[0].strip() for block in text.split("```bash\n")[1:3]]
    assert commands[0].startswith("pip install . && python -m pastset run")
    assert commands[1] == "pip install -e '.[test]' && python -m pytest"
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()


def test_shipped_code_and_tests_cite_nothing_outside_the_repo():
    """Docstrings and comments explain themselves; they do not send a reader to design
    notes that are not in the repository."""
    offenders = []
    for folder in ("pastset", "plugins", "tests", "examples", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for number, line in enumerate(text.splitlines(), start=1):
                if "DESIGN" + ".md" in line or "../" + "shared" in line or "DESIGN" + " section" in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


#: a reference to an issue tracker: the word issue with a number, or a number after a lone hash
ISSUE_REFERENCE = re.compile(r"\b[Ii]ssues?\s*#?\d+|(?<![\w&#/'\"])#\d+\b")


def _prose(markdown: str) -> str:
    """The text of a Markdown file without its code blocks and inline code."""
    without_blocks = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", without_blocks)


def _comments_and_docstrings(source: str):
    """(line, text) of every comment and triple-quoted string of a Python file."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string[1:]
        elif token.type == tokenize.STRING and token.string.lstrip("rbuRBU")[:3] in ('"""', "'''"):
            yield token.start[0], token.string


def test_docs_and_comments_cite_no_issue_numbers():
    """What a reader needs is said where it applies; the history of a change (and the issue
    it came from) belongs in git log."""
    offenders = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for line in _prose(path.read_text(encoding="utf-8")).splitlines():
            if ISSUE_REFERENCE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    for folder in ("pastset", "plugins", "tests", "examples", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, text in _comments_and_docstrings(path.read_text(encoding="utf-8")):
                if ISSUE_REFERENCE.search(text):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {text.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


def test_the_issue_reference_pattern():
    for cited in ("see issue 12", "Issues #3 and 4", "(#12)", "fixed in #7.", "issue#5"):
        assert ISSUE_REFERENCE.search(cited), cited
    for plain in ("colour #4C72B0", "a.b#12", "tissue 3x", "&#12;", "issued 3 times"):
        assert not ISSUE_REFERENCE.search(plain), plain


def test_the_commands_shown_write_no_file_of_the_repository():
    """A reader who pastes a command from the README or the docs does not overwrite a
    shipped file (the trace-plot example writes its PNG elsewhere than the one the docs
    show). The settings table of the docs is made from the settings themselves:
    tests/unit/test_docs.py checks it."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    blocks = [block.split("```", 1)[0] for page in pages for block in page.read_text().split("```bash\n")[1:]]
    written = [m.group(1) for block in blocks
               for m in re.finditer(r"(?:\s-o|--output|--trace)[ =](\S+)", block)]
    assert written, "the docs show commands that write files"
    for path in written:
        where = (ROOT / path).resolve()
        assert not (where.is_relative_to(ROOT.resolve()) and where.exists()), f"{path} is a file of the repository"
