"""The gateway process: configuration in service, listeners, reload, the
sweeper of timeouts, graceful shutdown, and the supervisor of several workers
(:mod:`fastgate.server.gateway`).  The HTTP/1.1 protocol itself, the upstream
pools and the router are the hot path, in :mod:`fastgate._core.proxy`."""
