"""Names every process of a run agrees on: the environment that says where the server is,
and the scheduler's answers to a worker asking for work.

A run puts the environment variables in the environment of its application, workers and
tasks; ``PastSet()`` with no arguments reads them. Kept in a module of their own so that
``import pastset`` in a task or worker stays cheap.
"""

ADDRESS_ENV = "PASTSET_ADDRESS"  #: "host:port" of the run's server
AUTHKEY_ENV = "PASTSET_AUTHKEY"  #: the run's authkey, hex (environment only, never argv)
RUN_ENV = "PASTSET_RUN"  #: the run's id
BIN_ENV = "PASTSET_BIN"  #: the run's application directory
STRICT_ENV = "PASTSET_STRICT"  #: "1": check moves against templates (the strict setting)

HALT = "halt"  #: next_task's answer after halt(): no more tasks will come
STOP = "stop"  #: next_task's answer when the run ends: stop every task now
