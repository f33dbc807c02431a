"""The README's runnable example is examples/two_clients.py word for word, and it runs;
the code explains itself without pointing outside the repository."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_embeds_the_two_clients_example_verbatim():
    example = (ROOT / "examples" / "two_clients.py").read_text()
    assert example.strip() in (ROOT / "README.md").read_text()


def test_two_clients_example_runs_and_shows_the_semantics():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "two_clients.py")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == str([(n, n * n) for n in range(10)])
    assert lines[1] == "first 10 last 10"
    assert lines[2] == "tuple 3 again: (3, 9)"
    assert lines[3].startswith("expired: tuple 2 of")
    assert lines[4] == "nothing more"


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


def test_readme_embeds_the_run_from_python_example_verbatim():
    example = (ROOT / "examples" / "run_from_python.py").read_text()
    assert example.strip() in (ROOT / "README.md").read_text()
