// The js-pre-hook scenario's middleware (bench/scenarios.py), as Tyk's JSVM
// documentation writes one: a pre hook adding a request header.
var benchPre = new TykJS.TykMiddleware.NewMiddleware({});
benchPre.NewProcessRequest(function(request, session, spec) {
    request.SetHeaders["X-Js"] = "1";
    return benchPre.ReturnData(request, {});
});
