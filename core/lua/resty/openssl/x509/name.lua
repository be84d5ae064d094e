-- resty.openssl.x509.name (lua-resty-openssl's API) over X509_NAME: new, dup,
-- istype, add, find, tostring, each, count, and pairs/# where LuaJIT has
-- Lua 5.2 metamethods.
local ffi = require "ffi"
local ossl = require "tollgate.openssl"
local nid_table = require("resty.openssl.pkey").nid_table

ffi.cdef [[
X509_NAME *X509_NAME_new(void);
void X509_NAME_free(X509_NAME *a);
X509_NAME *X509_NAME_dup(const X509_NAME *xn);
int X509_NAME_entry_count(const X509_NAME *name);
X509_NAME_ENTRY *X509_NAME_get_entry(const X509_NAME *name, int loc);
ASN1_OBJECT *X509_NAME_ENTRY_get_object(const X509_NAME_ENTRY *ne);
ASN1_STRING *X509_NAME_ENTRY_get_data(const X509_NAME_ENTRY *ne);
int X509_NAME_add_entry_by_txt(X509_NAME *name, const char *field, int type,
                               const unsigned char *bytes, int len, int loc, int set);
int X509_NAME_get_index_by_OBJ(const X509_NAME *name, const ASN1_OBJECT *obj, int lastpos);
ASN1_OBJECT *OBJ_txt2obj(const char *s, int no_name);
void ASN1_OBJECT_free(ASN1_OBJECT *a);
int OBJ_obj2nid(const ASN1_OBJECT *o);
const unsigned char *ASN1_STRING_get0_data(const ASN1_STRING *x);
int ASN1_STRING_length(const ASN1_STRING *x);
]]

local C = ossl.C
local ffi_gc = ffi.gc
local ffi_str = ffi.string
local ffi_cast = ffi.cast
local type = type
local setmetatable = setmetatable

local MBSTRING_ASC = 0x1001

local _M = {}

-- the entry at 0-based `i` as { id, nid, sn, ln, blob }
local function value_at(ctx, i)
  local entry = C.X509_NAME_get_entry(ctx, i)
  local obj = C.X509_NAME_ENTRY_get_object(entry)
  local nid = C.OBJ_obj2nid(obj)
  local t = nid_table(nid)
  if not t then
    local b = ossl.buf(128)
    local n = C.OBJ_obj2txt(ffi_cast("char *", b), 128, obj, 1)
    t = { id = ffi_str(b, n), nid = nid }
  end
  local data = C.X509_NAME_ENTRY_get_data(entry)
  if data ~= nil then
    t.blob = ffi_str(C.ASN1_STRING_get0_data(data), C.ASN1_STRING_length(data))
  end
  return t
end

local mt = { __index = _M }

-- each(), count(), tostring() ("K=v" sorted, joined with "/", as
-- lua-resty-openssl), pairs and #: (short name, obj) in order
ossl.stack_like(_M, mt, C.X509_NAME_entry_count, function(ctx, i)
  local obj = value_at(ctx, i)
  return obj.sn or obj.ln or obj.id, obj
end, function(obj)
  return obj.blob or ""
end)

local function wrap(ptr)
  return setmetatable({ ctx = ffi_gc(ptr, C.X509_NAME_free) }, mt)
end

--- An empty name.
function _M.new()
  local p = C.X509_NAME_new()
  if p == nil then
    return nil, "x509.name.new: X509_NAME_new() failed"
  end
  return wrap(p)
end

--- A name copied from an X509_NAME* cdata.
function _M.dup(ctx)
  if type(ctx) ~= "cdata" then
    return nil, "x509.name.dup: expect a x509.name ctx at #1"
  end
  local p = C.X509_NAME_dup(ctx)
  if p == nil then
    return nil, ossl.err("x509.name.dup")
  end
  return wrap(p)
end

--- true when `l` is a name instance.
_M.istype = ossl.istype(mt)

--- Appends the entry `nid_text` (e.g. "CN", "commonName", "2.5.4.3") = `txt`;
-- returns self (chainable), or nil, err.
function _M:add(nid_text, txt)
  if type(nid_text) ~= "string" or type(txt) ~= "string" then
    return nil, "x509.name:add: expect strings at #1 and #2"
  end
  if C.X509_NAME_add_entry_by_txt(self.ctx, nid_text, MBSTRING_ASC, txt, #txt, -1, 0) ~= 1 then
    return nil, ossl.err("x509.name:add", "invalid NID text " .. nid_text)
  end
  return self
end

--- The first entry `nid_text` after 1-based `last_pos`: obj, pos; nil when
-- there is none; nil, nil, err for an unknown name.
function _M:find(nid_text, last_pos)
  local obj = C.OBJ_txt2obj(tostring(nid_text), 0)
  if obj == nil then
    C.ERR_clear_error()
    return nil, nil, "x509.name:find: invalid NID text " .. tostring(nid_text)
  end
  local pos = C.X509_NAME_get_index_by_OBJ(self.ctx, obj, (last_pos or 0) - 1)
  C.ASN1_OBJECT_free(obj)
  if pos < 0 then
    return nil
  end
  return value_at(self.ctx, pos), pos + 1
end

return _M
