# Tyk's custom authentication tutorial plugin, as a Tyk user writes it.
from tyk.decorators import *
from gateway import TykGateway as tyk


@Hook
def MyAuthMiddleware(request, session, metadata, spec):
    auth = request.get_header('Authorization')
    if not auth:
        auth = request.object.params.get('auth', None)
    if auth == '47a0c79c427728b3df4af62b9228c8ae':
        session.rate = 1000.0
        session.per = 1.0
        session.quota_max = 3
        session.quota_renewal_rate = 3600
        metadata["token"] = "47a0c79c427728b3df4af62b9228c8ae"
        metadata["plan"] = "gold"
    return request, session, metadata
