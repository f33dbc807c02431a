"""What the tests share, one module per job: polling, threads, ``/proc`` scans, a server in a
child process, ``pastset`` runs, app files, raw peers, the live run for ``status``/``top``,
the live run with a dashboard and the headless browser that looks at its page.

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so a test imports ``helpers.polling``
and the like; nothing here imports pytest at module level, so the benchmarks can use it too.
"""
