-- resty.openssl.kdf (lua-resty-openssl's API) over OpenSSL 3's EVP_KDF:
-- the legacy derive(options) (PBKDF2, HKDF, TLS1-PRF, scrypt), new, istype,
-- get_provider_name, derive, reset, and the generic parameter getters/setters.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"
local param = require "tollgate.openssl_param"

ffi.cdef [[
typedef struct evp_kdf_st EVP_KDF;
typedef struct evp_kdf_ctx_st EVP_KDF_CTX;
EVP_KDF *EVP_KDF_fetch(OSSL_LIB_CTX *libctx, const char *algorithm, const char *properties);
void EVP_KDF_free(EVP_KDF *kdf);
const OSSL_PROVIDER *EVP_KDF_get0_provider(const EVP_KDF *kdf);
EVP_KDF_CTX *EVP_KDF_CTX_new(EVP_KDF *kdf);
void EVP_KDF_CTX_free(EVP_KDF_CTX *ctx);
void EVP_KDF_CTX_reset(EVP_KDF_CTX *ctx);
size_t EVP_KDF_CTX_get_kdf_size(EVP_KDF_CTX *ctx);
int EVP_KDF_derive(EVP_KDF_CTX *ctx, unsigned char *key, size_t keylen,
                   const OSSL_PARAM params[]);
const OSSL_PARAM *EVP_KDF_CTX_gettable_params(EVP_KDF_CTX *ctx);
const OSSL_PARAM *EVP_KDF_CTX_settable_params(EVP_KDF_CTX *ctx);
int EVP_KDF_CTX_get_params(EVP_KDF_CTX *ctx, OSSL_PARAM params[]);
int EVP_KDF_CTX_set_params(EVP_KDF_CTX *ctx, const OSSL_PARAM params[]);
]]

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_str = ffi.string
local type = type
local setmetatable = setmetatable
local getmetatable = getmetatable

local _M = {
  -- the NIDs lua-resty-openssl uses as type constants
  PBKDF2 = 69, SCRYPT = 973, TLS1_PRF = 1021, HKDF = 1036,
  HKDEF_MODE_EXTRACT_AND_EXPAND = 0, HKDEF_MODE_EXTRACT_ONLY = 1, HKDEF_MODE_EXPAND_ONLY = 2,
}
local mt = { __index = _M }

--- A KDF of `kdf_name` ("PBKDF2", "HKDF", "TLS1-PRF", "SCRYPT"...), or nil, err.
function _M.new(typ, properties)
  if type(typ) ~= "string" then
    return nil, "kdf.new: expect a string at #1"
  end
  local algo = C.EVP_KDF_fetch(nil, typ, properties)
  if algo == nil then
    C.ERR_clear_error()
    return nil, string.format("kdf.new: invalid kdf type \"%s\"", typ)
  end
  algo = ffi_gc(algo, C.EVP_KDF_free)
  local ctx = C.EVP_KDF_CTX_new(algo)
  if ctx == nil then
    return nil, ossl.err("kdf.new")
  end
  return setmetatable({ ctx = ffi_gc(ctx, C.EVP_KDF_CTX_free), algo = algo }, mt)
end

_M.istype = ossl.istype(mt)

--- The name of the KDF's provider ("default"...).
function _M:get_provider_name()
  return ossl.provider_name(C.EVP_KDF_get0_provider(self.algo))
end

param.install(_M, "kdf", function(self)
  return self.ctx, C.EVP_KDF_CTX_gettable_params, C.EVP_KDF_CTX_settable_params,
         C.EVP_KDF_CTX_get_params, C.EVP_KDF_CTX_set_params
end)

--- A key of `outlen` bytes (the KDF's own size when it has a fixed one and
-- `outlen` is nil) with the parameters `options` (see settable_params);
-- or nil, err.
local function instance_derive(self, outlen, options)
  local params, keep = param.build(C.EVP_KDF_CTX_settable_params(self.ctx), options or {},
                                   "kdf:derive")
  if not params then
    return nil, keep
  end
  if not outlen then
    if C.EVP_KDF_CTX_set_params(self.ctx, params) ~= 1 then
      return nil, ossl.err("kdf:derive")
    end
    outlen = tonumber(C.EVP_KDF_CTX_get_kdf_size(self.ctx))
    if outlen == 0 or outlen > 2 ^ 31 then
      return nil, "kdf:derive: outlen is required for this KDF"
    end
  end
  local out = ossl.buf(outlen)
  local rc = C.EVP_KDF_derive(self.ctx, out, outlen, params)
  local _k = keep -- alive until OpenSSL has read the values
  if rc ~= 1 then
    return nil, ossl.err("kdf:derive")
  end
  return ffi_str(out, outlen)
end

--- Starts over, as after new(); true.
function _M:reset()
  C.EVP_KDF_CTX_reset(self.ctx)
  return true
end

-- the legacy options of each type -> (KDF name, parameters)
local LEGACY = {
  [_M.PBKDF2] = function(o)
    return "PBKDF2", { pass = o.pass or "", salt = o.salt or "", digest = o.md or "sha1",
                       iter = (o.pbkdf2_iter or 1) < 1 and 1 or (o.pbkdf2_iter or 1),
                       pkcs5 = 1 }
  end,
  [_M.HKDF] = function(o)
    if not o.hkdf_key then
      return nil, "kdf.derive: \"hkdf_key\" is required"
    end
    return "HKDF", { key = o.hkdf_key, salt = o.salt or "", info = o.hkdf_info or "",
                     digest = o.md or "sha1", mode = o.hkdf_mode or 0 }
  end,
  [_M.TLS1_PRF] = function(o)
    if not o.tls1_prf_secret or not o.tls1_prf_seed then
      return nil, "kdf.derive: \"tls1_prf_secret\" and \"tls1_prf_seed\" are required"
    end
    return "TLS1-PRF", { secret = o.tls1_prf_secret, seed = o.tls1_prf_seed,
                         digest = o.md or "sha1" }
  end,
  [_M.SCRYPT] = function(o)
    if not o.scrypt_N or not o.scrypt_r or not o.scrypt_p then
      return nil, "kdf.derive: \"scrypt_N\", \"scrypt_r\" and \"scrypt_p\" are required"
    end
    return "SCRYPT", { pass = o.pass or "", salt = o.salt or "", n = o.scrypt_N,
                       r = o.scrypt_r, p = o.scrypt_p,
                       maxmem_bytes = o.scrypt_maxmem or 32 * 1024 * 1024 }
  end,
}

-- the legacy one-call form
local function legacy_derive(options)
  if type(options) ~= "table" then
    return nil, "kdf.derive: expect a table at #1"
  end
  local make = LEGACY[options.type]
  if not make then
    return nil, "kdf.derive: unknown type " .. tostring(options.type)
  end
  if type(options.outlen) ~= "number" and options.type ~= _M.HKDF then
    return nil, "kdf.derive: \"outlen\" is required"
  end
  local name, params = make(options)
  if not name then
    return nil, params
  end
  local k, err = _M.new(name, options.properties)
  if not k then
    return nil, err
  end
  local outlen = options.outlen
  if options.type == _M.HKDF and params.mode == _M.HKDEF_MODE_EXTRACT_ONLY then
    outlen = nil
  end
  return instance_derive(k, outlen, params)
end

--- k:derive(outlen, options, options_count?) on an instance; or the legacy
-- kdf.derive(options) with options.type (kdf.PBKDF2, .HKDF, .TLS1_PRF,
-- .SCRYPT), options.outlen and the type's options. The key, or nil, err.
function _M.derive(self_or_options, ...)
  if getmetatable(self_or_options) == mt then
    return instance_derive(self_or_options, ...)
  end
  return legacy_derive(self_or_options)
end

return _M
