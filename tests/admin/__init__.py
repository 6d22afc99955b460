"""The Gateway REST API (/tyk/keys, /tyk/policies, /tyk/apis) and ``fastgate keys``."""
