"""The environment every process of a run agrees on: where the server is, who this process is.

A run puts the environment variables in the environment of its application, workers and
tasks; ``PastSet()`` with no arguments reads them. Kept in a module of their own so that
``import pastset`` in a task or worker stays cheap.
"""
from typing import Optional, Tuple

ADDRESS_ENV = "PASTSET_ADDRESS"  #: "host:port" of the run's server
AUTHKEY_ENV = "PASTSET_AUTHKEY"  #: the run's authkey, hex (environment only, never argv)
#: the SHA-256 fingerprint of the server's TLS certificate, hex, when the run uses TLS
#: (travels as the authkey does: environment, stdin, 0600 files; never argv)
TLS_ENV = "PASTSET_TLS_FINGERPRINT"
RUN_ENV = "PASTSET_RUN"  #: the run's id
BIN_ENV = "PASTSET_BIN"  #: the run's application directory
STRICT_ENV = "PASTSET_STRICT"  #: "1": check moves against templates (the strict setting)
TASK_ENV = "PASTSET_TASK"  #: in a task: its id (the worker sets it)
WORKER_ENV = "PASTSET_WORKER"  #: in a task: the id of the worker running it
APP_ENV = "PASTSET_APP"  #: "1" in the run's application (the runner sets it)
#: every variable of a run's environment (:func:`app_environment` sets or clears them all)
RUN_VARIABLES = (ADDRESS_ENV, AUTHKEY_ENV, TLS_ENV, RUN_ENV, BIN_ENV, APP_ENV, STRICT_ENV, TASK_ENV, WORKER_ENV)


def credentials_line(authkey: bytes, tls_fingerprint: Optional[str] = None) -> bytes:
    """The line that gives a process started on another host (on its stdin, or in a 0600
    file) the run's credentials: the authkey in hex, then the fingerprint of the server's
    certificate when the run uses TLS."""
    fields = [authkey.hex()] + ([tls_fingerprint] if tls_fingerprint else [])
    return (" ".join(fields) + "\n").encode()


def parse_credentials(line: str) -> Tuple[bytes, Optional[str]]:
    """(authkey, TLS fingerprint or None) from a :func:`credentials_line`; ValueError if it
    is not one (the message never quotes the line: it holds the key)."""
    fields = line.split()
    if not 1 <= len(fields) <= 2:
        raise ValueError("not an authkey (hex), optionally followed by a certificate fingerprint")
    try:
        authkey = bytes.fromhex(fields[0])
    except ValueError:
        raise ValueError("the authkey is not hex") from None
    if not authkey:
        raise ValueError("the authkey is empty")
    return authkey, (fields[1] if len(fields) == 2 else None)


def caller_identity() -> dict:
    """Who this process is to the run's server (sent once per connection, see
    :class:`pastset.space.waits.Caller`): a task by its id, the run's app, else a plain client.

    A connection serves one thread, so it also names that thread (its native id): deadlock
    detection can then tell a thread inside a PastSet call from one that may still act.
    """
    import os
    import threading

    thread = threading.get_native_id()
    task = os.environ.get(TASK_ENV)
    if task:
        return {"kind": "task", "task": task, "pid": os.getpid(), "thread": thread}
    if os.environ.get(APP_ENV) == "1":
        return {"kind": "app", "pid": os.getpid(), "thread": thread}
    return {"kind": "client", "pid": os.getpid(), "thread": thread}


def app_environment(base, address: str, authkey: bytes, run_id: str, bin_dir: str, strict: bool,
                    tls_fingerprint: Optional[str] = None) -> dict:
    """``base`` (a mapping) with the variables that make ``pastset.PastSet()`` find the run
    at ``address`` ("host:port") and call as its app (pinning the server's certificate by
    ``tls_fingerprint`` when the run uses TLS); whatever ``base`` held of another run's
    environment is gone (a run started from a task: its app is no task)."""
    env = {k: v for k, v in base.items() if k not in RUN_VARIABLES}
    env.update({ADDRESS_ENV: address, AUTHKEY_ENV: authkey.hex(), RUN_ENV: run_id, BIN_ENV: bin_dir, APP_ENV: "1"})
    if tls_fingerprint:
        env[TLS_ENV] = tls_fingerprint
    if strict:
        env[STRICT_ENV] = "1"
    return env


def pastset_pythonpath(environ) -> str:
    """PYTHONPATH (from ``environ``'s) that lets children import this very pastset, even
    from a checkout."""
    import os

    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parts = [here] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]
    return os.pathsep.join(parts)
