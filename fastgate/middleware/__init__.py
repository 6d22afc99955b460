"""The per-API middleware chain: authentication, session checks, limits.

A middleware is an object with a ``name`` and a ``process(exchange)`` method
answering ``None`` (go on), ``bytes`` (a complete response: the request is
refused) or an awaitable of either (it needs I/O).  The chain of an API is
built once, when the API is loaded, by filtering and ordering the middleware
that apply to it (:func:`fastgate.middleware.chain.build_chain`); nothing per
request decides *which* middleware runs, only what they decide.
"""
