-- keyless-post-1k: every request is POST / with the same 1 KiB body.
-- No request() function, so wrk formats the request once and keeps its fast path.
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
