"""Alembic revisions of the pfnode schema, one file per revision (``NNNN_<what>.py``).

A package only so that installs ship these files; Alembic skips this module.
"""
