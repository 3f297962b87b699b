"""Tests of the online gateway."""
