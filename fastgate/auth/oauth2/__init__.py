"""OAuth 2.0: fastgate as the authorization server (Tyk's ``use_oauth2``).

* :mod:`.model` -- clients, codes, refresh tokens and token listings in the
  store's record tables; access tokens issued as keys.
"""
