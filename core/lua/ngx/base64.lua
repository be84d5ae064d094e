-- ngx.base64 (lua-resty-core's API): base64url without padding, as nginx's
-- ngx_encode_base64url / ngx_decode_base64url, over libcrypto.
local ossl = require "tollgate.openssl"

local type = type
local error = error

local _M = { version = "0.1.28" }

--- The base64url form of `s` ('-' and '_', no padding).
function _M.encode_base64url(s)
  if type(s) ~= "string" then
    return error("string argument only", 2)
  end
  return ossl.b64_encode(s, true, true)
end

--- The bytes of a base64url string, or nil, "invalid input".
function _M.decode_base64url(s)
  if type(s) ~= "string" then
    return error("string argument only", 2)
  end
  local out = ossl.b64_decode(s, true)
  if not out then
    return nil, "invalid input"
  end
  return out
end

return _M
