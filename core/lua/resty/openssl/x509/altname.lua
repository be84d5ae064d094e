-- resty.openssl.x509.altname (lua-resty-openssl's API) over GENERAL_NAMES:
-- new, dup, istype, add, tostring, each, all, index, count, and pairs/#
-- where LuaJIT has Lua 5.2 metamethods. Names decode as email, DNS, URI, IP
-- (text) and DirName (an x509.name); other types as "<Type>:<unsupported>".
local ffi = require "ffi"
local ossl = require "tollgate.openssl"
local name = require "resty.openssl.x509.name"

ffi.cdef [[
GENERAL_NAME *GENERAL_NAME_new(void);
void GENERAL_NAME_free(GENERAL_NAME *a);
GENERAL_NAME *GENERAL_NAME_dup(const GENERAL_NAME *a);
void GENERAL_NAMES_free(OPENSSL_STACK *a);
OPENSSL_STACK *OPENSSL_sk_new_null(void);
int OPENSSL_sk_push(OPENSSL_STACK *st, const void *data);
OPENSSL_STACK *OPENSSL_sk_deep_copy(const OPENSSL_STACK *st, void *copyfunc, void *freefunc);
ASN1_STRING *ASN1_IA5STRING_new(void);
ASN1_STRING *ASN1_OCTET_STRING_new(void);
int ASN1_STRING_set(ASN1_STRING *str, const void *data, int len);
void ASN1_STRING_free(ASN1_STRING *a);
int inet_pton(int af, const char *src, void *dst);
const char *inet_ntop(int af, const void *src, char *dst, unsigned int size);
]]

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_str = ffi.string
local ffi_cast = ffi.cast
local type = type
local setmetatable = setmetatable

local GEN = { OTHERNAME = 0, EMAIL = 1, DNS = 2, X400 = 3, DIRNAME = 4, EDIPARTY = 5, URI = 6,
              IPADD = 7, RID = 8 }
local LITERALS = { [0] = "OtherName", "email", "DNS", "X400", "DirName", "EdiParty", "URI",
                   "IP", "RID" }
-- the (case-insensitive) names add() takes
local ADD_TYPES = {
  rfc822name = GEN.EMAIL, rfc822 = GEN.EMAIL, email = GEN.EMAIL,
  uniformresourceidentifier = GEN.URI, uri = GEN.URI,
  dnsname = GEN.DNS, dns = GEN.DNS,
  ip = GEN.IPADD, ipaddress = GEN.IPADD,
}
local AF_INET, AF_INET6 = 2, 10

local _M = {}

local function str_of(s)
  return ffi_str(C.ASN1_STRING_get0_data(s), C.ASN1_STRING_length(s))
end

-- the entry at 0-based `i` as key, value
local function value_at(ctx, i)
  local gn = ffi_cast("GENERAL_NAME *", C.OPENSSL_sk_value(ctx, i))
  local t = gn.type
  local k = LITERALS[t] or "Unknown"
  if t == GEN.EMAIL or t == GEN.DNS or t == GEN.URI then
    return k, str_of(gn.d.ia5)
  elseif t == GEN.DIRNAME then
    return k, name.dup(gn.d.directoryName)
  elseif t == GEN.IPADD then
    local raw = str_of(gn.d.ia5)
    local b = ossl.buf(64)
    local p = C.inet_ntop(#raw == 4 and AF_INET or AF_INET6, raw, ffi_cast("char *", b), 64)
    return k, p ~= nil and ffi_str(p) or "IP:<unsupported>"
  end
  return k, k .. ":<unsupported>"
end

local mt = {}

-- each(), count(), tostring() ("TYPE=value" sorted, joined with "/"), pairs
-- and #: (type, value) in order
local iter = ossl.stack_like(_M, mt, C.OPENSSL_sk_num, value_at, tostring)

local function wrap(st)
  return setmetatable({ ctx = ffi_gc(st, C.GENERAL_NAMES_free) }, mt)
end
_M.wrap = wrap -- takes ownership of a GENERAL_NAMES* (resty.openssl.x509)

--- An empty altname.
function _M.new()
  local st = C.OPENSSL_sk_new_null()
  if st == nil then
    return nil, "x509.altname.new: OPENSSL_sk_new_null() failed"
  end
  return wrap(st)
end

--- An altname copied from a GENERAL_NAMES* cdata.
function _M.dup(ctx)
  if type(ctx) ~= "cdata" then
    return nil, "x509.altname.dup: expect a GENERAL_NAMES ctx at #1"
  end
  local st = C.OPENSSL_sk_deep_copy(ffi_cast("OPENSSL_STACK *", ctx),
                                    ffi_cast("void *", C.GENERAL_NAME_dup),
                                    ffi_cast("void *", C.GENERAL_NAME_free))
  if st == nil then
    return nil, ossl.err("x509.altname.dup")
  end
  return wrap(st)
end

_M.istype = ossl.istype(mt)

--- Appends a name: `typ` is RFC822Name/RFC822/Email, UniformResourceIdentifier/
-- URI, DNSName/DNS or IP/IPAddress (case-insensitive). Returns self
-- (chainable), or nil, err.
function _M:add(typ, value)
  if type(typ) ~= "string" then
    return nil, "x509.altname:add: expect a string at #1"
  elseif type(value) ~= "string" then
    return nil, "x509.altname:add: expect a string at #2"
  end
  local t = ADD_TYPES[typ:lower()]
  if not t then
    return nil, "x509.altname:add: unknown type " .. typ
  end
  local data, s = value, nil
  if t == GEN.IPADD then
    local b = ossl.buf(16)
    if C.inet_pton(AF_INET, value, b) == 1 then
      data = ffi_str(b, 4)
    elseif C.inet_pton(AF_INET6, value, b) == 1 then
      data = ffi_str(b, 16)
    else
      return nil, "x509.altname:add: invalid IP address " .. value
    end
    s = C.ASN1_OCTET_STRING_new()
  else
    s = C.ASN1_IA5STRING_new()
  end
  if s == nil or C.ASN1_STRING_set(s, data, #data) ~= 1 then
    if s ~= nil then
      C.ASN1_STRING_free(s)
    end
    return nil, ossl.err("x509.altname:add")
  end
  local gn = C.GENERAL_NAME_new()
  if gn == nil then
    C.ASN1_STRING_free(s)
    return nil, ossl.err("x509.altname:add")
  end
  gn.type = t
  gn.d.ia5 = s -- owned by gn
  if C.OPENSSL_sk_push(self.ctx, gn) <= 0 then
    C.GENERAL_NAME_free(gn)
    return nil, ossl.err("x509.altname:add")
  end
  return self
end

--- The names as a table type -> value (the last one of a type wins).
function _M:all()
  local out = {}
  for k, v in iter(self) do
    out[k] = v
  end
  return out
end

--- The 1-based `i`-th name as { type, value }; nil out of bounds.
function _M:index(i)
  if type(i) ~= "number" or i < 1 or i > C.OPENSSL_sk_num(self.ctx) then
    return nil
  end
  return { value_at(self.ctx, i - 1) }
end

mt.__index = function(self, k)
  if type(k) == "number" then
    return _M.index(self, k)
  end
  return _M[k]
end

return _M
