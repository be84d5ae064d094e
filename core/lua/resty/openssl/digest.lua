-- resty.openssl.digest (lua-resty-openssl's API) over EVP_MD_CTX:
-- new(name?, properties?), istype, get_provider_name, update, final, reset,
-- and the generic parameter getters/setters.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"
local param = require "tollgate.openssl_param"

ffi.cdef [[
const OSSL_PARAM *EVP_MD_CTX_gettable_params(EVP_MD_CTX *ctx);
const OSSL_PARAM *EVP_MD_CTX_settable_params(EVP_MD_CTX *ctx);
int EVP_MD_CTX_get_params(EVP_MD_CTX *ctx, OSSL_PARAM params[]);
int EVP_MD_CTX_set_params(EVP_MD_CTX *ctx, const OSSL_PARAM params[]);
]]

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_str = ffi.string
local type = type
local setmetatable = setmetatable

local _M = {}
local mt = { __index = _M }

--- A digest of `digest_name` (case-insensitive, default "sha1"; "null" does
-- nothing), or nil, err.
function _M.new(digest_name, properties)
  digest_name = digest_name or "sha1"
  if type(digest_name) ~= "string" then
    return nil, "digest.new: expect a string at #1"
  end
  local md
  if properties ~= nil and digest_name:lower() ~= "null" then
    md = C.EVP_MD_fetch(nil, digest_name, tostring(properties))
    md = md ~= nil and ffi_gc(md, C.EVP_MD_free) or nil
  else
    md = ossl.md(digest_name)
  end
  if not md then
    C.ERR_clear_error()
    return nil, string.format("digest.new: invalid digest type \"%s\"", digest_name)
  end
  local ctx = C.EVP_MD_CTX_new()
  if ctx == nil then
    return nil, "digest.new: failed to create EVP_MD_CTX"
  end
  ctx = ffi_gc(ctx, C.EVP_MD_CTX_free)
  if C.EVP_DigestInit_ex(ctx, md, nil) ~= 1 then
    return nil, ossl.err("digest.new")
  end
  return setmetatable({ ctx = ctx, md = md, dtyp = digest_name, md_size = C.EVP_MD_get_size(md) },
                      mt)
end

--- true when `l` is a digest instance.
_M.istype = ossl.istype(mt)

--- The name of the provider of this digest ("default", "fips"...).
function _M:get_provider_name()
  return ossl.provider_name(C.EVP_MD_get0_provider(self.md))
end

--- update(...) feeds strings (true, or nil, err); final(s?) gives the raw
-- digest (after feeding `s` if given), or nil, err.
ossl.streaming(_M, "digest", C.EVP_DigestUpdate, function(self)
  local out = ossl.buf(self.md_size > 64 and self.md_size or 64)
  local n = ossl.uint()
  if C.EVP_DigestFinal_ex(self.ctx, out, n) ~= 1 then
    return nil
  end
  return ffi_str(out, n[0])
end)

--- Starts over, as after new(); true, or nil, err.
function _M:reset()
  if C.EVP_DigestInit_ex(self.ctx, self.md, nil) ~= 1 then
    return nil, ossl.err("digest:reset")
  end
  return true
end

param.install(_M, "digest", function(self)
  return self.ctx, C.EVP_MD_CTX_gettable_params, C.EVP_MD_CTX_settable_params,
         C.EVP_MD_CTX_get_params, C.EVP_MD_CTX_set_params
end)

return _M
