"""Integration tests of the gateway process (``fastgate run``) over real sockets."""
