-- tollgate.resty_digest: builds lua-resty-string's digest modules (resty.md5,
-- resty.sha1, resty.sha224, resty.sha256, resty.sha384, resty.sha512), which
-- share one API: `obj = mod:new()`, `obj:update(s)` -> boolean,
-- `obj:final()` -> binary digest, `obj:reset()` -> boolean.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_str = ffi.string
local setmetatable = setmetatable

return function(alg, size)
  local md = assert(ossl.md(alg), alg)
  local _M = { _VERSION = "0.16" }
  _M.digest_len = size
  local mt = { __index = _M }

  function _M.new(_)
    local ctx = C.EVP_MD_CTX_new()
    if ctx == nil then
      return nil
    end
    ctx = ffi_gc(ctx, C.EVP_MD_CTX_free)
    if C.EVP_DigestInit_ex(ctx, md, nil) ~= 1 then
      C.ERR_clear_error()
      return nil
    end
    return setmetatable({ _ctx = ctx }, mt)
  end

  function _M:update(s)
    s = tostring(s)
    return C.EVP_DigestUpdate(self._ctx, s, #s) == 1
  end

  function _M:final()
    local out = ossl.buf(64)
    local n = ossl.uint()
    if C.EVP_DigestFinal_ex(self._ctx, out, n) ~= 1 then
      C.ERR_clear_error()
      return nil
    end
    return ffi_str(out, n[0])
  end

  function _M:reset()
    return C.EVP_DigestInit_ex(self._ctx, md, nil) == 1
  end

  return _M
end
