-- resty.sha384 (lua-resty-string's API) over libcrypto: new, update, final, reset.
return require("tollgate.resty_digest")("sha384", 48)
