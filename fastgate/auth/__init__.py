"""Authentication methods, one module each, all with the middleware interface
(``name``, ``process(exchange)``; see :mod:`fastgate.middleware`)."""
