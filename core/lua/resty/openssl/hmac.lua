-- resty.openssl.hmac (lua-resty-openssl's API) over HMAC_CTX:
-- new(key, digest_name?), istype, update, final, reset.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_str = ffi.string
local type = type
local setmetatable = setmetatable

local _M = {}
local mt = { __index = _M }

--- An HMAC keyed by `key` over `digest_name` (case-insensitive, default
-- "sha1"), or nil, err.
function _M.new(key, digest_name)
  if type(key) ~= "string" then
    return nil, "hmac.new: expect a string at #1"
  end
  digest_name = digest_name or "sha1"
  local md = type(digest_name) == "string" and ossl.md(digest_name)
  if not md then
    return nil, string.format("hmac.new: invalid digest type \"%s\"", tostring(digest_name))
  end
  local ctx = C.HMAC_CTX_new()
  if ctx == nil then
    return nil, "hmac.new: failed to create HMAC_CTX"
  end
  ctx = ffi_gc(ctx, C.HMAC_CTX_free)
  if C.HMAC_Init_ex(ctx, key, #key, md, nil) ~= 1 then
    return nil, ossl.err("hmac.new")
  end
  return setmetatable({ ctx = ctx, dtyp = digest_name, md_size = C.EVP_MD_get_size(md) }, mt)
end

--- true when `l` is an hmac instance.
_M.istype = ossl.istype(mt)

--- update(...) feeds strings (true, or nil, err); final(s?) gives the raw
-- HMAC (after feeding `s` if given), or nil, err.
ossl.streaming(_M, "hmac", C.HMAC_Update, function(self)
  local out = ossl.buf(self.md_size > 64 and self.md_size or 64)
  local n = ossl.uint()
  if C.HMAC_Final(self.ctx, out, n) ~= 1 then
    return nil
  end
  return ffi_str(out, n[0])
end)

--- Starts over with the same key and digest; true, or nil, err.
function _M:reset()
  if C.HMAC_Init_ex(self.ctx, nil, 0, nil, nil) ~= 1 then
    return nil, ossl.err("hmac:reset")
  end
  return true
end

return _M
