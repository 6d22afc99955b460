"""Tests of fastgate._core: every test runs against the compiled module and its twin."""
