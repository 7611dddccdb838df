"""The command table: ``table`` (the types and the dispatcher), one module per group of
commands (``browse``, ``reading``, ``tracks``, ``notes``, ``admin``, ``review``), and ``groups``,
the one list of them that builds the whole table.

Kept light on purpose: the handlers import ``table``, and ``groups`` imports the handlers.
"""
