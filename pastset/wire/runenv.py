"""The environment every process of a run agrees on: where the server is, who this process is.

A run puts the environment variables in the environment of its application, workers and
tasks; ``PastSet()`` with no arguments reads them. Kept in a module of their own so that
``import pastset`` in a task or worker stays cheap.
"""

ADDRESS_ENV = "PASTSET_ADDRESS"  #: "host:port" of the run's server
AUTHKEY_ENV = "PASTSET_AUTHKEY"  #: the run's authkey, hex (environment only, never argv)
RUN_ENV = "PASTSET_RUN"  #: the run's id
BIN_ENV = "PASTSET_BIN"  #: the run's application directory
STRICT_ENV = "PASTSET_STRICT"  #: "1": check moves against templates (the strict setting)
TASK_ENV = "PASTSET_TASK"  #: in a task: its id (the worker sets it)
WORKER_ENV = "PASTSET_WORKER"  #: in a task: the id of the worker running it
APP_ENV = "PASTSET_APP"  #: "1" in the run's application (the runner sets it)



def caller_identity() -> dict:
    """Who this process is to the run's server (sent once per connection, see
    :class:`pastset.space.waits.Caller`): a task by its id, the run's app, else a plain client."""
    import os

    task = os.environ.get(TASK_ENV)
    if task:
        return {"kind": "task", "task": task, "pid": os.getpid()}
    if os.environ.get(APP_ENV) == "1":
        return {"kind": "app", "pid": os.getpid()}
    return {"kind": "client", "pid": os.getpid()}

