"""Tests of the online scoring gateway (serving/)."""
