"""Moved to :mod:`fastgate.responses` (a leaf every layer may use); this name
stays only while the last importers move."""

from fastgate.responses import *  # noqa: F403
from fastgate.responses import (  # noqa: F401
    ADMIN_BODY_TOO_LARGE_CLOSE,
    BAD_GATEWAY,
    BAD_GATEWAY_CLOSE,
    GATEWAY_TIMEOUT,
    GATEWAY_TIMEOUT_CLOSE,
    HEADER_TIMEOUT_CLOSE,
    HEADERS_TOO_LARGE_CLOSE,
    HELLO_PAYLOAD,
    JSON_TYPE,
    NOT_FOUND,
    NOT_FOUND_CLOSE,
    STATUS_LINES,
    TOO_MANY_CONNECTIONS,
    ErrorResponses,
    error_response,
    json_response,
)
