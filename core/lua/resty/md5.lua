-- resty.md5 (lua-resty-string's API) over libcrypto: new, update, final, reset.
return require("tollgate.resty_digest")("md5", 16)
