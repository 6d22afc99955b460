// Tyk's JavaScript custom authentication: ReturnAuthData(request, session).
var jsAuth = new TykJS.TykMiddleware.NewMiddleware({});

jsAuth.NewProcessRequest(function(request, session, config) {
    var token = request.Headers["Authorization"];
    if (token && token[0] === "js-secret") {
        session.rate = 100;
        session.per = 1;
        session.quota_max = 2;
        session.quota_renewal_rate = 3600;
        session.meta_data = {"who": "js"};
        return jsAuth.ReturnAuthData(request, session);
    }
    request.ReturnOverrides.ResponseCode = 403;
    request.ReturnOverrides.ResponseError = "bad token";
    return jsAuth.ReturnAuthData(request, session);
});
