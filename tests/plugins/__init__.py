"""Tests of the plugin runtime: bundles, Python and JavaScript middleware."""
