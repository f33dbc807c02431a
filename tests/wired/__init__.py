"""Tests with a real server or run on this machine: child processes, TCP over loopback."""
