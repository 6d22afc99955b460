"""Tyk's ``TykJS`` shim (fastgate's own JavaScript, written from Tyk's documented
JSVM API): run first in every API's context by the worker.

It is kept as a string so that it ships with the package whatever the
package-data rules say.
"""

TYKJS = r"""
// fastgate's TykJS: the JavaScript API Tyk's JSVM (otto) gives middleware and
// virtual endpoints, written from Tyk's documentation.  It runs first in every
// API's context; the host functions (__host_*, __b64*) come from the worker.

var b64enc = function (text) { return __b64enc(String(text)); };
var b64dec = function (text) {
    var out = __b64dec(String(text));
    return out === null ? undefined : out;
};
var rawb64enc = function (text) { return __rawb64enc(String(text)); };
var rawb64dec = function (text) {
    var out = __rawb64dec(String(text));
    return out === null ? undefined : out;
};

// Host functions take strings (Tyk reads each argument with String()) and
// answer a string, or undefined when the call failed.
var __tykHost = function (fn, args) {
    var strings = [];
    for (var i = 0; i < args.length; i++) {
        strings.push(String(args[i]));
    }
    var out = fn.apply(null, strings);
    return out === null ? undefined : out;
};
var TykMakeHttpRequest = function () { return __tykHost(__host_TykMakeHttpRequest, arguments); };
var TykBatchRequest = function () { return __tykHost(__host_TykBatchRequest, arguments); };
var TykGetKeyData = function () { return __tykHost(__host_TykGetKeyData, arguments); };
var TykSetKeyData = function () {
    __tykHost(__host_TykSetKeyData, arguments);
    return undefined;
};

// A virtual endpoint's answer: what Tyk reads back from the function.
var TykJsResponse = function (response, session_meta) {
    return JSON.stringify({Response: response, SessionMeta: session_meta});
};

var TykJS = {
    TykMiddleware: {
        MiddlewareComponentMeta: function (configuration) {
            this.configuration = configuration;
        }
    },
    TykEventHandlers: {
        EventHandlerComponentMeta: function () {}
    }
};

(function () {
    var Meta = TykJS.TykMiddleware.MiddlewareComponentMeta;

    Meta.prototype.ProcessRequest = function (request, session, config) {
        log("Process Request Not Implemented");
        return request;
    };

    // What the gateway calls: the body travels base64-encoded both ways, the
    // Headers the script got are not sent back (SetHeaders/DeleteHeaders are).
    Meta.prototype.DoProcessRequest = function (request, session, config) {
        request.Body = b64dec(request.Body);
        if (request.Body === undefined) {
            request.Body = "";
        }
        var processed = this.ProcessRequest(request, session, config);
        if (!processed) {
            log("Middleware didn't return request object!");
            return undefined;
        }
        processed.Request.Headers = {};
        processed.Request.Body = b64enc(processed.Request.Body);
        return JSON.stringify(processed);
    };

    TykJS.TykMiddleware.NewMiddleware = function (configuration) {
        Meta.call(this, configuration);
    };
    var New = TykJS.TykMiddleware.NewMiddleware;
    New.prototype = Object.create(Meta.prototype);
    New.prototype.constructor = New;

    New.prototype.NewProcessRequest = function (callback) {
        this.ProcessRequest = callback;
    };
    New.prototype.ReturnData = function (request, session) {
        return {Request: request, SessionMeta: session};
    };
    New.prototype.ReturnAuthData = function (request, session) {
        return {Request: request, Session: session};
    };

    var Events = TykJS.TykEventHandlers.EventHandlerComponentMeta;
    Events.prototype.DoProcessEvent = function (event, context) {
        this.Handle(event, context);
    };
    Events.prototype.Handle = function (event, context) {
        log("Handler not implemented!");
        return event;
    };
    TykJS.TykEventHandlers.NewEventHandler = function () {
        Events.call(this);
    };
    var NewEvents = TykJS.TykEventHandlers.NewEventHandler;
    NewEvents.prototype = Object.create(Events.prototype);
    NewEvents.prototype.constructor = NewEvents;
    NewEvents.prototype.NewHandler = function (callback) {
        this.Handle = callback;
    };
})();
"""
