"""Hostile and broken servers (issue 13): loopback servers that misbehave on purpose, and
end-to-end tests of what the tap does against them.

- ``servers.py``: the raw-socket HTTP/websocket server, the APIs' normal answers, a
  private CA (``trustme``), gzip bombs;
- ``runner.py``: runs the tap as a subprocess, measures wall time and the child's own
  peak RSS (``os.wait4``), kills it past a deadline or 700 MiB resident;
- ``cases.py``: every case as data (``CASES``: name, group, streams, server builder,
  expected outcome, bounds) and the checks every run must pass; ``python -m
  tests.hostile.cases`` prints the table;
- ``test_<group>.py``: one parametrised test per group over ``cases.cells(group)``.

Run them with ``pytest -m hostile`` (or leave them out with ``-m 'not hostile'``).
"""
