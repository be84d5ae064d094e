-- resty.openssl.mac (lua-resty-openssl's API) over OpenSSL 3's EVP_MAC:
-- new(key, mac, cipher?, digest?, properties?), istype, get_provider_name,
-- update, final, reset, and the generic parameter getters/setters.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"
local param = require "tollgate.openssl_param"

ffi.cdef [[
typedef struct evp_mac_st EVP_MAC;
typedef struct evp_mac_ctx_st EVP_MAC_CTX;
EVP_MAC *EVP_MAC_fetch(OSSL_LIB_CTX *libctx, const char *algorithm, const char *properties);
void EVP_MAC_free(EVP_MAC *mac);
const OSSL_PROVIDER *EVP_MAC_get0_provider(const EVP_MAC *mac);
EVP_MAC_CTX *EVP_MAC_CTX_new(EVP_MAC *mac);
void EVP_MAC_CTX_free(EVP_MAC_CTX *ctx);
size_t EVP_MAC_CTX_get_mac_size(EVP_MAC_CTX *ctx);
int EVP_MAC_init(EVP_MAC_CTX *ctx, const unsigned char *key, size_t keylen,
                 const OSSL_PARAM params[]);
int EVP_MAC_update(EVP_MAC_CTX *ctx, const unsigned char *data, size_t datalen);
int EVP_MAC_final(EVP_MAC_CTX *ctx, unsigned char *out, size_t *outl, size_t outsize);
const OSSL_PARAM *EVP_MAC_CTX_gettable_params(EVP_MAC_CTX *ctx);
const OSSL_PARAM *EVP_MAC_CTX_settable_params(EVP_MAC_CTX *ctx);
int EVP_MAC_CTX_get_params(EVP_MAC_CTX *ctx, OSSL_PARAM params[]);
int EVP_MAC_CTX_set_params(EVP_MAC_CTX *ctx, const OSSL_PARAM params[]);
]]

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_str = ffi.string
local type = type
local setmetatable = setmetatable

local _M = {}
local mt = { __index = _M }

--- A MAC of algorithm `mac` ("HMAC", "CMAC", "GMAC"...) keyed by `key`, over
-- `cipher` or `digest` (at least one); or nil, err.
function _M.new(key, mac, cipher, digest, properties)
  if type(key) ~= "string" then
    return nil, "mac.new: expect a string at #1"
  end
  if type(mac) ~= "string" then
    return nil, "mac.new: expect a string at #2"
  end
  if not cipher and not digest then
    return nil, "mac.new: expect either digest or cipher"
  end
  local algo = C.EVP_MAC_fetch(nil, mac, properties)
  if algo == nil then
    C.ERR_clear_error()
    return nil, string.format("mac.new: invalid mac type \"%s\"", mac)
  end
  algo = ffi_gc(algo, C.EVP_MAC_free)
  local ctx = C.EVP_MAC_CTX_new(algo)
  if ctx == nil then
    return nil, ossl.err("mac.new")
  end
  ctx = ffi_gc(ctx, C.EVP_MAC_CTX_free)
  local kv = {}
  if digest then
    kv[#kv + 1], kv[#kv + 2] = "digest", tostring(digest)
  end
  if cipher then
    kv[#kv + 1], kv[#kv + 2] = "cipher", tostring(cipher)
  end
  if properties then
    kv[#kv + 1], kv[#kv + 2] = "properties", tostring(properties)
  end
  if C.EVP_MAC_init(ctx, key, #key, param.utf8_params(kv)) ~= 1 then
    return nil, ossl.err("mac.new")
  end
  return setmetatable({ ctx = ctx, algo = algo, dtyp = digest, ctyp = cipher }, mt)
end

--- true when `l` is a mac instance.
_M.istype = ossl.istype(mt)

--- The name of the MAC's provider ("default"...).
function _M:get_provider_name()
  return ossl.provider_name(C.EVP_MAC_get0_provider(self.algo))
end

--- update(...) feeds strings (true, or nil, err); final(s?) gives the raw
-- MAC (after feeding `s` if given), or nil, err.
ossl.streaming(_M, "mac", C.EVP_MAC_update, function(self)
  local size = tonumber(C.EVP_MAC_CTX_get_mac_size(self.ctx))
  local out = ossl.buf(size)
  local n = ossl.size_t()
  if C.EVP_MAC_final(self.ctx, out, n, size) ~= 1 then
    return nil
  end
  return ffi_str(out, n[0])
end)

--- Starts over with the same key and parameters; true, or nil, err.
function _M:reset()
  if C.EVP_MAC_init(self.ctx, nil, 0, nil) ~= 1 then
    return nil, ossl.err("mac:reset")
  end
  return true
end

param.install(_M, "mac", function(self)
  return self.ctx, C.EVP_MAC_CTX_gettable_params, C.EVP_MAC_CTX_settable_params,
         C.EVP_MAC_CTX_get_params, C.EVP_MAC_CTX_set_params
end)

return _M
