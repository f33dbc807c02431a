"""The documentation in docs/ stays true to the code: the settings reference is made from the
settings table, every program it shows as a file is that file, every config file it shows
is one pastset reads, every page it links exists, and every ``--help`` names its page.

The shell sessions of the pages run for real in tests/wired/test_docs_sessions.py, and the built
site is checked for anything fetched from the network in tests/wired/test_docs_site.py.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import sys

import pytest

from pastset.cli.commands import COMMANDS, build_parser
from pastset.cli.commands import DOCS as COMMAND_DOCS
from pastset.cli.flags import setting_flags
from pastset.cli.outcome import DOCS_HOME
from pastset.launch.plugins import launchers, make_plugin_manager
from pastset.settings.hostfile import read_host_file
from pastset.settings.load import load_settings
from pastset.settings.specs import BY_ENV, SETTINGS

from helpers.docblocks import PAGES, blocks
from helpers.paths import DOCS, ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

#: the built-in launchers' option specs, by name
OPTIONS = {name: info.cls.option_specs for name, info in launchers(make_plugin_manager(autoload=False)).items()}


def _load_hook():
    spec = importlib.util.spec_from_file_location("settings_table", DOCS / "hooks" / "settings_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = _load_hook()
CLUSTERS = (DOCS / "clusters.md").read_text(encoding="utf-8")
CLUSTERS_EXPANDED = HOOK.expand(CLUSTERS)


def test_the_settings_page_is_made_from_the_settings_table():
    page = (DOCS / "running.md").read_text(encoding="utf-8")
    assert page.count("<!-- settings-table -->") == 1
    table = HOOK.expand(page)
    for spec in SETTINGS.values():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{spec.name}` |"))
        assert f"`{spec.env}`" in row and spec.doc.split(";")[0].replace("|", "\\|") in row
        if spec.flag:
            assert f"`{spec.flag}`" in row
    # nobody writes a settings table by hand beside the generated one
    assert not re.search(r"^\| `procs` \|", HOOK.MARKER.sub("", page), re.MULTILINE)


def test_the_tables_kept_in_the_pages_are_what_the_code_makes_now():
    assert HOOK.stale_pages(write=False) == [], \
        "a setting or launcher option changed: python docs/hooks/settings_table.py writes the tables afresh"


def test_a_stale_table_is_made_afresh_whole():
    fresh = HOOK.expand("Before.\n\n<!-- settings-table -->\n<!-- end of generated table -->\n\nAfter.\n")
    stale = fresh.replace("| `procs` |", "| `processes` |")
    assert HOOK.expand(stale) == fresh and HOOK.expand(fresh) == fresh
    assert fresh.startswith("Before.\n\n<!-- settings-table -->\n\n| setting |")
    assert fresh.endswith("|\n\n<!-- end of generated table -->\n\nAfter.\n")
    # a marker written without its end line gets a table of its own; the text after it stays
    added = HOOK.expand("<!-- launcher-options slurm -->\n\nBetween.\n\n" + fresh)
    assert added.startswith("<!-- launcher-options slurm -->\n\n| key |")
    assert "<!-- end of generated table -->\n\nBetween.\n\n" + fresh in added


def test_the_launcher_tables_are_made_from_the_launchers_options():
    for name in ("slurm", "sge", "pbs"):
        assert f"<!-- launcher-options {name} -->" in CLUSTERS
        for spec in OPTIONS[name]:
            assert f"| `{spec.name}` |" in CLUSTERS_EXPANDED


@pytest.mark.parametrize("page, info, text", [b for b in blocks("python") if "title=" in b[1]],
                         ids=lambda v: v.split('"')[1] if isinstance(v, str) and "title=" in v else "")
def test_a_program_shown_as_a_file_is_that_file(page, info, text):
    path = re.search(r'title="([^"]+)"', info).group(1)
    assert (ROOT / path).read_text(encoding="utf-8") == text, f"{page.name} shows {path} as it is not"


@pytest.mark.parametrize("page, info, text", [b for b in blocks("toml") if "[pastset" in b[2]],
                         ids=lambda v: v.name if hasattr(v, "name") else "")
def test_every_config_file_shown_is_one_pastset_reads(page, info, text, tmp_path):
    config = tmp_path / "pastset.toml"
    # a page may show a launcher's table alone, or [pastset] with launcher tables
    config.write_text(text, encoding="utf-8")
    tomllib.loads(text)
    load_settings(config_file=str(config), environ={}, cwd=str(tmp_path), launcher_options=OPTIONS)


@pytest.mark.parametrize("page, info, text", list(blocks("ini")), ids=lambda v: v.name if hasattr(v, "name") else "")
def test_every_ini_file_shown_is_one_pastset_reads(page, info, text, tmp_path):
    config = tmp_path / "pypastset.conf"  # a name not ending in .toml: read as ini
    config.write_text(text, encoding="utf-8")
    load_settings(config_file=str(config), environ={}, cwd=str(tmp_path), launcher_options=OPTIONS)


def test_every_python_block_compiles():
    for page, _info, text in blocks("python"):
        compile(text, f"{page.name} block", "exec")


def test_every_page_is_in_the_site_and_every_link_between_pages_exists():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in PAGES:
        assert f": {page.name}\n" in nav, f"{page.name} is not in the nav of mkdocs.yml"
        for target in re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]+)?\)", page.read_text(encoding="utf-8")):
            assert (DOCS / target).exists(), f"{page.name} links {target}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\((docs/[\w/.-]+?)(?:#[\w-]+)?\)", readme):
        assert (ROOT / target).exists(), f"README.md links {target}"


def test_every_help_ends_with_the_page_that_covers_it():
    parser = build_parser()
    assert parser.format_help().rstrip().splitlines()[-1].startswith(f"documentation: {DOCS_HOME}")
    subparsers = next(a for a in parser._actions if a.choices and "run" in a.choices).choices
    assert set(COMMAND_DOCS) == set(COMMANDS)
    for name, sub in subparsers.items():
        last = sub.format_help().rstrip().splitlines()[-1]
        page = re.fullmatch(r"documentation: (docs/\w+\.md) \(in the pastset repository\)", last)
        assert page, (name, last)
        assert (ROOT / page.group(1)).exists()


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    example = next(text for _, text in re.findall(r"^```(python)\n(.*?)^```", readme, re.DOTALL | re.MULTILINE))
    assert example in (ROOT / "examples" / "tutorial" / "squares.py").read_text(encoding="utf-8")
    assert len(example.splitlines()) <= 25
    # the output it shows is the tutorial's, which tests/wired/test_docs_sessions.py checks
    session = re.search(r"^```console\n\$ cd examples/tutorial && (.*?)\n(.*?)^```", readme, re.DOTALL | re.MULTILINE)
    tutorial = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    shown = re.search(r"^\$ " + re.escape(session.group(1)) + r"\n(.*?)^```", tutorial, re.DOTALL | re.MULTILINE)
    assert shown and sorted(shown.group(1).splitlines()) == sorted(session.group(2).splitlines())
    assert "![" in readme


#: what a shell line of the docs may run besides ``python -m pastset``: the command and what it is checked by
OTHER_COMMANDS = {
    "cd": "the directory exists in the repository",
    "pip": "each extra it installs is declared in pyproject.toml",
    "python -m pytest": "the suite itself",
    "mkdocs": "tests/wired/test_docs_site.py builds the site",
}


def shell_commands():
    """(page, variables, argv, directory) of every command of every ``bash`` block of the
    docs and the README, ``A && B`` as two; directory is where a ``cd`` before it went."""
    for page, _info, text in blocks("bash", [*PAGES, ROOT / "README.md"]):
        directory = ROOT
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                command, words = (words[:words.index("&&")], words[words.index("&&") + 1:]) if "&&" in words \
                    else (words, [])
                variables = {}
                while command and re.fullmatch(r"[A-Z_]+=.*", command[0]):
                    name, value = command.pop(0).split("=", 1)
                    variables[name] = value
                yield page, variables, command, directory
                if command[0] == "cd":
                    directory = directory / command[1]


def test_every_shell_command_shown_parses_with_pastsets_own_parser():
    """Every ``python -m pastset ...`` line of a ``bash`` block (cluster runs included) is a
    command line pastset's parser takes, its flags and PS* variables valid settings, and a
    run's APP is in its bin directory when that is in the repository; the other commands are
    the few of :data:`OTHER_COMMANDS`."""
    parser = build_parser()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pastset_commands = 0
    for page, variables, argv, directory in shell_commands():
        where = f"{page.name}: {' '.join(argv)}"
        if argv[:3] == ["python", "-m", "pastset"]:
            try:
                args = parser.parse_args(argv[3:])
            except SystemExit:
                raise AssertionError(f"{where}: pastset's parser refuses it") from None
            assert set(variables) <= set(BY_ENV), f"{where}: {set(variables) - set(BY_ENV)} are no settings"
            environ = {name: os.path.expanduser(value) for name, value in variables.items()}
            load_settings(flags=setting_flags(args), config_file=os.devnull, environ=environ, cwd=str(directory),
                          launcher_options=OPTIONS)
            if args.command == "run" and not os.path.expanduser(args.bin or environ.get("PSBIN", ".")).startswith("/"):
                bin_dir = directory / (args.bin or environ.get("PSBIN", "."))
                assert (bin_dir / args.app).is_file(), f"{where}: no {args.app} in {bin_dir}"
            pastset_commands += 1
        elif argv[0] == "cd":
            assert (directory / argv[1]).is_dir(), where
        elif argv[0] == "pip":
            for extra in re.findall(r"\[(\w+)\]", " ".join(argv)):
                assert extra in extras, f"{where}: no extra {extra!r} in pyproject.toml"
        else:
            assert any(" ".join(argv).startswith(known) for known in OTHER_COMMANDS), f"{where}: an unknown command"
    assert pastset_commands >= 8


def test_a_line_shown_from_a_program_is_a_line_of_that_program():
    """The tutorial's one-line snippet is the slip of examples/tutorial/square_typo.py, which
    its deadlock session runs (tests/wired/test_docs_sessions.py)."""
    line = next(text for page, info, text in blocks("python") if page.name == "tutorial.md" and "title=" not in info)
    assert line in (ROOT / "examples" / "tutorial" / "square_typo.py").read_text(encoding="utf-8").splitlines(True)
    assert line not in (ROOT / "examples" / "tutorial" / "square.py").read_text(encoding="utf-8")


def test_the_hosts_file_shown_is_read_as_the_page_says(tmp_path):
    sample = next(text for page, _, text in blocks("text") if page.name == "clusters.md" and text.startswith("n0\n"))
    (tmp_path / "pshosts").write_text(sample, encoding="utf-8")
    assert read_host_file(str(tmp_path / "pshosts")) == ["n0", "n1"]
