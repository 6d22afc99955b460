from tyk.decorators import *

calls = 0


@Hook
def ExtractedAuth(request, session, metadata, spec):
    global calls
    calls += 1
    if request.get_header('X-User') == 'alice':
        session.rate = 100.0
        session.per = 1.0
        session.id_extractor_deadline = 4102444800  # 2100-01-01: known for long
        session.metadata["calls"] = str(calls)
        metadata["token"] = "alice-token"
    return request, session, metadata
