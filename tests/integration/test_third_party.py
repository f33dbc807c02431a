"""A third-party launcher plugin, as its own distribution, installed by pip into a fresh venv.

The distribution is built in tmp: a ``pyproject.toml`` declaring ``[project.entry-points.pastset]
acme = "acme_pastset"`` and a module registering an ``AcmeLauncher`` (local workers with a
marker in their environment, so the test sees the run really used it). It is installed with
pip into a fresh venv that also sees this interpreter's site-packages (so this editable pastset), no
network: the plugin carries a 40-line in-tree PEP 517 backend, so neither build isolation nor
the ``wheel`` package is needed. Then: ``pastset launchers`` lists it with its distribution's
name and version, ``--launcher acme`` runs on it, and ``PASTSET_DISABLE_PLUGIN_AUTOLOAD=1``
hides it.
"""
from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.apps import write_apps
from helpers.docblocks import block

pytestmark = pytest.mark.slow

#: the plugin's pyproject.toml: the one of the docs, built by the small backend below
PYPROJECT = """\
[build-system]
requires = []
build-backend = "acme_build"
backend-path = ["."]

""" + block("plugins.md", "toml", "# pyproject.toml of your plugin\n")
#: the launcher plugin example of the docs, so the documented code is the tested code
PLUGIN = block("plugins.md", "python", '"""acme: ')

# A minimal PEP 517 backend: the wheel holds the module and a dist-info made from pyproject.toml.
BACKEND = '''\
import base64, hashlib, os, zipfile
try:
    import tomllib
except ImportError:
    import tomli as tomllib


def _project():
    with open("pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    dist = project["name"].replace("-", "_")
    info = f"{dist}-{project['version']}.dist-info"
    entry_points = "".join(f"[{group}]\\n" + "".join(f"{k} = {v}\\n" for k, v in eps.items())
                           for group, eps in project.get("entry-points", {}).items())
    files = {
        "acme_pastset.py": open("acme_pastset.py", "rb").read(),
        f"{info}/METADATA": (f"Metadata-Version: 2.1\\nName: {project['name']}\\nVersion: {project['version']}\\n"
                             f"Summary: {project.get('description', '')}\\n").encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: acme_build\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
        f"{info}/entry_points.txt": entry_points.encode(),
    }
    name = f"{dist}-{project['version']}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        for path, data in files.items():
            whl.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        whl.writestr(f"{info}/RECORD", "\\n".join(record) + "\\n")
    return name
'''

APP = """\
import pastset
pset = pastset.PastSet()
where = pset.enter(("launched-by", str))
pset.spawn("task.py", "")
print("task saw ACME_LAUNCHER=" + where.observe(timeout=30)[1], flush=True)
pset.halt()
"""

TASK = """\
import os, pastset
pastset.PastSet().enter(("launched-by", str)).move(("launched-by", os.environ.get("ACME_LAUNCHER", "unset")))
"""


def see_our_packages(python: Path) -> None:
    """Let the new venv import what this interpreter has (pastset, tomli on old Pythons).

    ``--system-site-packages`` would only show the *base* interpreter's packages, which is
    not enough when the tests themselves run in a venv; ``site.addsitedir`` from a .pth
    file also runs the .pth files there (an editable install's import hook among them)."""
    ours = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    lines = [f"import site; site.addsitedir({p!r})" for p in ours]
    Path(target, "pastset_tests_outer.pth").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("third-party")
    plugin = tmp / "acme-pastset-launcher"
    plugin.mkdir()
    (plugin / "pyproject.toml").write_text(PYPROJECT)
    write_apps(plugin, {
        "acme_pastset.py": PLUGIN,
        "acme_build.py": BACKEND,
    })
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    see_our_packages(python)
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps",
                           "--disable-pip-version-check", "-q", str(plugin)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    write_apps(bin_dir, {
        "app.py": APP,
        "task.py": TASK,
    })
    return python, bin_dir, tmp


def pastset(python: Path, tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PS", "PASTSET_"))}
    base.update(PASTSET_RUNTIME_DIR=str(tmp / "records"), **env)
    return subprocess.run([str(python), "-m", "pastset", *args], capture_output=True, text=True, timeout=60,
                          env=base, stdin=subprocess.DEVNULL, cwd=str(tmp))


def test_launchers_lists_the_plugin_with_its_distribution(venv):
    python, bin_dir, tmp = venv
    done = pastset(python, tmp, "launchers")
    assert done.returncode == 0, done.stderr
    line = [row for row in done.stdout.splitlines() if row.startswith("acme ")]
    assert line and "acme-pastset-launcher 1.2" in line[0] and "ACME_LAUNCHER=1" in line[0], done.stdout
    assert "slurm" in done.stdout  # the built-ins are still there


def test_a_run_uses_the_plugin(venv):
    python, bin_dir, tmp = venv
    done = pastset(python, tmp, "run", "--config", os.devnull, "--launcher", "acme", "--procs", "2",
                   "--bin", str(bin_dir), "app.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "task saw ACME_LAUNCHER=1" in done.stdout


def test_disable_autoload_hides_the_plugin(venv):
    python, bin_dir, tmp = venv
    done = pastset(python, tmp, "launchers", PASTSET_DISABLE_PLUGIN_AUTOLOAD="1")
    assert done.returncode == 0 and "local" in done.stdout
    assert "acme" not in done.stdout
    done = pastset(python, tmp, "run", "--config", os.devnull, "--launcher", "acme", "--bin", str(bin_dir), "app.py",
                   PASTSET_DISABLE_PLUGIN_AUTOLOAD="1")
    assert done.returncode == 1
    assert "launcher: 'acme' from flag --launcher is not one of" in done.stderr, done.stderr
