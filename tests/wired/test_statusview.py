"""The status document built from a real server's space and scheduler, X-function elements
named as the program named them."""
from __future__ import annotations

import pastset
from pastset.observe.statusview import render_status
from pastset.server.status import build_status

from helpers.apps import write_apps


def test_the_document_builds_from_a_real_space_and_scheduler():
    with pastset.Server() as server:
        with pastset.PastSet(server.address, authkey=server.authkey) as pset:
            element = pset.enter(("job", int))
            element.move((1,))
            element.move((2,))
            element.observe()
            task = pset.spawn("sum.py", ["1"])
        doc = build_status(run=server.service.hello(), scheduler=server.scheduler.snapshot(),
                           elements=server.space.templates(), waits=[], flows={})
    [row] = doc["elements"]
    assert (row["template"], row["first"], row["last"], row["unobserved"]) == ("('job', int)", 1, 2, 1)
    [queued] = doc["tasks"]
    assert (queued["id"], queued["application"], queued["state"], queued["run_time"]) == \
        (str(task) if isinstance(task, str) else task.id, "sum.py", "queued", None)


def test_an_x_function_element_names_its_module_as_the_program_did(tmp_path):
    write_apps(tmp_path, {"xscale.py": "import pastset.element\n\nclass Element(pastset.element.Element):\n    pass\n"})
    with pastset.Server(bin_dir=str(tmp_path)) as server:
        with pastset.PastSet(server.address, authkey=server.authkey) as pset:
            pset.enter(("Temperature", str, float), "xscale")
            pset.enter(("plain", int))
        doc = build_status(run=server.service.hello(), scheduler=server.scheduler.snapshot(),
                           elements=server.space.templates(), waits=[], flows={})
    assert [(e["template"], e["xfunction"]) for e in doc["elements"]] == \
        [("('Temperature', str, float)", "xscale"), ("('plain', int)", None)]
    lines = render_status(doc, "elements").splitlines()
    header = next(line for line in lines if line.startswith("ID"))
    assert "X-FUNCTION" in header
    assert any(line.startswith("1 ") and "xscale" in line for line in lines)
    assert "pastset_xfunction" not in "\n".join(lines)
