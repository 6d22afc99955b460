"""fastgate: an HTTP/1.1 API gateway that reads Tyk's configuration language."""

__version__ = "0.1.0"
