# Request and response hooks in the shapes of Tyk's documentation.
import asyncio
import json
import time

from tyk.decorators import *
from gateway import TykGateway as tyk


@Hook
def MyPreMiddleware(request, session, spec):
    tyk.log("MyPreMiddleware is called", "info")
    request.add_header("X-Plugin-Pre", "yes")
    request.delete_header("X-Remove-Me")
    request.object.url = request.object.url.replace("/old", "/new")
    request.add_param("added", "1")
    request.delete_param("secret")
    return request, session


@Hook
def MyPostMiddleware(request, session, metadata, spec):
    request.add_header("X-Api-Id", spec["APIID"])
    request.add_header("X-Config", json.loads(spec["config_data"]).get("greeting", ""))
    if request.object.body:
        request.object.body = request.object.body.upper()
    return request, session, metadata


@Hook
def ResponseHook(request, response, session, metadata, spec):
    tyk.log("ResponseHook: upstream returned {0}".format(response.status_code), "info")
    response.headers["injectedkey"] = "injectedvalue"
    if response.status_code == 418:
        response.status_code = 200
        response.raw_body = b"teapot no more"
    return response


@Hook
def Refuse(request, session, spec):
    if request.get_header("X-Deny"):
        request.object.return_overrides.response_code = 401
        request.object.return_overrides.response_error = "denied by plugin"
        request.object.return_overrides.headers = {"X-Why": "plugin"}
    elif request.get_header("X-Answer"):
        request.object.return_overrides.response_code = 200
        request.object.return_overrides.response_body = "answered by plugin"
        request.object.return_overrides.headers = {"Content-Type": "text/plain"}
    return request, session


@Hook
def Broken(request, session, spec):
    if request.get_header("X-Break"):
        raise ValueError("the plugin broke")
    return request, session


@Hook
def Blocking(request, session, spec):
    if request.get_header("X-Sleep"):
        time.sleep(float(request.get_header("X-Sleep")))
    request.add_header("X-Slept", "yes")
    return request, session


@Hook
async def AsyncLookup(request, session, metadata, spec):
    # An async hook asks another service (the echo upstream) before deciding.
    config = json.loads(spec["config_data"])
    reader, writer = await asyncio.open_connection(config["host"], config["port"])
    writer.write(b"GET /status/201 HTTP/1.1\r\nHost: lookup\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    status = answer.split(b" ", 2)[1].decode()
    request.add_header("X-Lookup-Status", status)
    return request, session, metadata


@Hook
def Counter(request, session, metadata, spec):
    count = int(tyk.get_data("counter") or "0") + 1
    tyk.store_data("counter", str(count), 60)
    request.add_header("X-Count", str(count))
    return request, session, metadata


@Hook
def BrokenAuth(request, session, metadata, spec):
    if request.get_header("X-Break"):
        raise ValueError("the plugin broke")
    return request, session, metadata
