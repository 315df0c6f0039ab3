"""Hostile servers: loopback servers that misbehave on purpose, and the cases the tap
must survive against them (``cases.CASES``), shared by ``tests/hostile`` and the fault
matrix's hostile table."""
