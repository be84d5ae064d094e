-- tollgate.openssl_param: lua-resty-openssl's generic EVP parameter API
-- (gettable_params, settable_params, get_param, set_params) over OpenSSL 3's
-- OSSL_PARAM, shared by resty.openssl.digest, .mac and .pkey.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"

ffi.cdef [[
typedef struct ossl_param_st {
  const char *key;
  unsigned int data_type;
  void *data;
  size_t data_size;
  size_t return_size;
} OSSL_PARAM;
BIGNUM *BN_native2bn(const unsigned char *s, int len, BIGNUM *ret);
]]

local C = ossl.C
local ffi_new = ffi.new
local ffi_str = ffi.string
local ffi_cast = ffi.cast

local INTEGER, UNSIGNED, REAL, UTF8, OCTET, UTF8_PTR, OCTET_PTR = 1, 2, 3, 4, 5, 6, 7
local UNMODIFIED = ffi_cast("size_t", -1)

local TYPE_NAMES = {
  [INTEGER] = "integer", [UNSIGNED] = "unsigned integer", [REAL] = "real number",
  [UTF8] = "string", [OCTET] = "octet string", [UTF8_PTR] = "string pointer",
  [OCTET_PTR] = "octet string pointer",
}

local M = {}

-- the entries of a const OSSL_PARAM* array (nil-terminated)
local function entries(p)
  local out = {}
  if p == nil then
    return out
  end
  local i = 0
  while p[i].key ~= nil do
    out[#out + 1] = { key = ffi_str(p[i].key), data_type = p[i].data_type,
                      data_size = tonumber(p[i].data_size) }
    i = i + 1
  end
  return out
end

local function describe(e)
  local size = e.data_size == 0 and "arbitrary size"
               or string.format("max %d bytes large", e.data_size)
  return { e.key, (TYPE_NAMES[e.data_type] or "unknown type") .. " (" .. size .. ")" }
end

local function schema_of(p, raw)
  local list = entries(p)
  if raw then
    return list
  end
  local out = {}
  for i, e in ipairs(list) do
    out[i] = describe(e)
  end
  return out
end

local function find(p, key)
  for _, e in ipairs(entries(p)) do
    if e.key == key then
      return e
    end
  end
end

--- Adds gettable_params, settable_params, get_param and set_params to the
-- class `cls`. `fns(self)` returns the OpenSSL object and its four
-- functions: gettable(obj), settable(obj), get(obj, params), set(obj, params).
function M.install(cls, name, fns)
  function cls:gettable_params(raw)
    local obj, gettable = fns(self)
    return schema_of(gettable(obj), raw)
  end

  function cls:settable_params(raw)
    local obj, _, settable = fns(self)
    return schema_of(settable(obj), raw)
  end

  function cls:get_param(key, want_size, want_type)
    local where = name .. ":get_param"
    local obj, gettable, _, get = fns(self)
    local e = find(gettable(obj), tostring(key))
    if not e then
      return nil, where .. ": unknown parameter \"" .. tostring(key) .. "\""
    end
    local size = want_size or (e.data_size > 0 and e.data_size) or 100
    local buf = ffi_new("unsigned char[?]", size)
    local params = ffi_new("OSSL_PARAM[2]")
    params[0].key = e.key
    params[0].data_type = e.data_type
    params[0].data = buf
    params[0].data_size = size
    params[0].return_size = UNMODIFIED
    local keep = e.key
    if get(obj, params) ~= 1 then
      return nil, ossl.err(where)
    end
    local n = params[0].return_size
    if n == UNMODIFIED then
      return nil, where .. ": parameter \"" .. keep .. "\" was not returned"
    end
    n = tonumber(n)
    if want_type == "bn" then
      local bn = require "resty.openssl.bn"
      local p = C.BN_native2bn(buf, n, nil)
      if p == nil then
        return nil, ossl.err(where)
      end
      local b = bn.dup(p)
      C.BN_free(p)
      return b
    end
    local t = e.data_type
    if t == INTEGER then
      return tonumber(n == 4 and ffi_cast("int32_t *", buf)[0] or ffi_cast("int64_t *", buf)[0])
    elseif t == UNSIGNED then
      return tonumber(n == 4 and ffi_cast("uint32_t *", buf)[0] or ffi_cast("uint64_t *", buf)[0])
    elseif t == REAL then
      return tonumber(ffi_cast("double *", buf)[0])
    elseif t == UTF8 or t == OCTET then
      return ffi_str(buf, n)
    end
    return nil, where .. ": unsupported parameter type " .. tostring(t)
  end

  function cls:set_params(values)
    local where = name .. ":set_params"
    local obj, _, settable, _, set = fns(self)
    local params, keep_or_err = M.build(settable(obj), values, where)
    if not params then
      return nil, keep_or_err
    end
    local rc = set(obj, params)
    local _ = keep_or_err -- alive until OpenSSL has read the values
    if rc ~= 1 then
      return nil, ossl.err(where)
    end
    return true
  end
end

--- An OSSL_PARAM array from a table of values typed by the settable
-- `schema` (a number given for a string parameter is passed as an integer,
-- as OpenSSL's HKDF "mode" takes either). Returns the array and the cdata
-- to keep alive while it is used, or nil, err.
function M.build(schema, values, where)
  if type(values) ~= "table" then
    return nil, where .. ": expect a table at #1"
  end
  local list, keep = {}, {}
  for k, v in pairs(values) do
    local e = find(schema, tostring(k))
    if not e then
      return nil, where .. ": unknown parameter \"" .. tostring(k) .. "\""
    end
    local data, size
    local t = e.data_type
    if t == UTF8 and type(v) == "number" then
      t = INTEGER
    end
    if t == INTEGER or t == UNSIGNED then
      data = ffi_new(t == INTEGER and "int64_t[1]" or "uint64_t[1]", tonumber(v))
      size = 8
    elseif t == REAL then
      data, size = ffi_new("double[1]", tonumber(v)), 8
    elseif t == UTF8 or t == OCTET then
      v = tostring(v)
      data, size = ffi_new("char[?]", #v + 1, v), #v
    else
      return nil, where .. ": unsupported parameter type for \"" .. e.key .. "\""
    end
    keep[#keep + 1] = data
    keep[#keep + 1] = e.key
    list[#list + 1] = { key = e.key, t = t, data = data, size = size }
  end
  local params = ffi_new("OSSL_PARAM[?]", #list + 1)
  for i, p in ipairs(list) do
    params[i - 1].key = p.key
    params[i - 1].data_type = p.t
    params[i - 1].data = p.data
    params[i - 1].data_size = p.size
    params[i - 1].return_size = UNMODIFIED
  end
  return params, keep
end

--- An OSSL_PARAM array of UTF-8 strings from { key, value, key, value... }
-- (the Lua strings must stay alive while the array is used).
function M.utf8_params(kv)
  local n = #kv / 2
  local params = ffi_new("OSSL_PARAM[?]", n + 1)
  for i = 0, n - 1 do
    local v = kv[i * 2 + 2]
    params[i].key = kv[i * 2 + 1]
    params[i].data_type = UTF8
    params[i].data = ffi_cast("void *", v)
    params[i].data_size = #v
    params[i].return_size = UNMODIFIED
  end
  return params
end

return M
