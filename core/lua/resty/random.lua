-- resty.random (lua-resty-string's API): bytes(len, strong) over RAND_bytes.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"

local C = ossl.C
local ffi_str = ffi.string

local _M = { _VERSION = "0.16" }

--- `len` random bytes; nil when the generator fails. OpenSSL 3 has one
-- generator for both, so `strong` changes nothing but is accepted.
function _M.bytes(len, strong)
  local _ = strong
  len = tonumber(len)
  if not len or len < 0 then
    return nil
  end
  if len == 0 then
    return ""
  end
  local b = ossl.buf(len)
  if C.RAND_bytes(b, len) ~= 1 then
    C.ERR_clear_error()
    return nil
  end
  return ffi_str(b, len)
end

return _M
