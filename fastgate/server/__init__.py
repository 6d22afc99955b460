"""The HTTP/1.1 proxy: client protocol, upstream pool, router, responses."""
