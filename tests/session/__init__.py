"""Tests of fastgate.session: session objects, key formats, policies, access rights."""
