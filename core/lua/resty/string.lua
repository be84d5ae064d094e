-- resty.string (lua-resty-string's API): to_hex and atoi, over libcrypto/libc.
local ossl = require "tollgate.openssl"

local C = ossl.C
local tostring = tostring

local _M = { _VERSION = "0.16" }

--- The lower-case hexadecimal form of a binary string.
function _M.to_hex(s)
  return ossl.to_hex(s)
end

--- C's atoi: the leading decimal integer of `s` (0 when there is none).
function _M.atoi(s)
  return tonumber(C.atoi(tostring(s)))
end

return _M
