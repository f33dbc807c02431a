"""Tests that need nothing but this process: no child process, no TCP (see ``conftest.py``)."""
