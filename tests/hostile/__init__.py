"""Hostile and broken servers (issue 13): end-to-end tests of what the tap does against
loopback servers that misbehave on purpose. The servers, the cases (``CASES``: name,
group, streams, server builder, expected outcome, bounds) and the measured runner live
in ``harness/hostile/`` (the fault matrix's hostile table uses them too); here is one
parametrised test per group over ``cases.cells(group)``.

Run them with ``pytest -m hostile`` (or leave them out with ``-m 'not hostile'``).
"""
