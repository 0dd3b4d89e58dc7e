"""Several worker processes behind one set of listeners (``workers = N``).

- ``slots``: the in-flight counts every process can read (one shared memory block, one row of
  counters per worker, each row written by its worker only; readers sum).
- ``channel``: the messages between the control process and its workers (JSON lines).
- ``master``, ``holder``: the control process's side: binds the listeners, starts and
  supervises workers, publishes the pools' health to them, gathers their counters.
- ``worker``: a worker process: serves the listeners it inherited, with pools fed by the
  control process.
"""
