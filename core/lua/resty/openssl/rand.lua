-- resty.openssl.rand (lua-resty-openssl's API): bytes(length, private?, strength?).
local ffi = require "ffi"
local ossl = require "tollgate.openssl"

local C = ossl.C
local ffi_str = ffi.string

local _M = {}

--- `length` random bytes from the public (or, with `private`, the private)
-- generator, of at least `strength` bits of security; or nil, err.
function _M.bytes(length, private, strength)
  if type(length) ~= "number" then
    return nil, "rand.bytes: expect a number at #1"
  elseif strength ~= nil and type(strength) ~= "number" then
    return nil, "rand.bytes: expect a number at #3"
  end
  length = math.floor(length)
  if length < 0 then
    return nil, "rand.bytes: length must be positive"
  end
  if length == 0 then
    return ""
  end
  local b = ossl.buf(length)
  local f = private and C.RAND_priv_bytes_ex or C.RAND_bytes_ex
  if f(nil, b, length, strength or 0) ~= 1 then
    return nil, ossl.err("rand.bytes")
  end
  return ffi_str(b, length)
end

return _M
