-- tollgate.shdict: ngx.shared.NAME over core/shdict.c (one store per dict,
-- shared by every worker thread), with lua-nginx-module's API, return values
-- and messages.
local ffi = require "ffi"

local C = ffi.C
local ffi_string = ffi.string
local ffi_new = ffi.new
local type = type
local tostring = tostring
local tonumber = tonumber
local error = error
local setmetatable, pairs = setmetatable, pairs
local byte = string.byte

ffi.cdef [[
  typedef struct tg_shdict_s tg_shdict_t;
  void tg_shdict_ensure(void);
  int tg_shdict_count(void);
  const char *tg_shdict_name_at(int i);
  tg_shdict_t *tg_shdict_find(const char *name, size_t len);
  int tg_shdict_store(tg_shdict_t *d, int op, const char *key, size_t klen, int vtype,
                      const char *str, size_t slen, double num, double exptime, int flags,
                      const char **err, int *forcible);
  int tg_shdict_get(tg_shdict_t *d, const char *key, size_t klen, int *vtype, char **buf,
                    size_t *blen, double *num, int *flags, int get_stale, int *is_stale);
  void tg_shdict_free(void *p);
  int tg_shdict_incr(tg_shdict_t *d, const char *key, size_t klen, double *value,
                     int has_init, double init, double init_ttl, const char **err,
                     int *forcible);
  int tg_shdict_push(tg_shdict_t *d, const char *key, size_t klen, int left, int vtype,
                     const char *str, size_t slen, double num, const char **err);
  int tg_shdict_pop(tg_shdict_t *d, const char *key, size_t klen, int left, int *vtype,
                    char **buf, size_t *blen, double *num, const char **err);
  int tg_shdict_llen(tg_shdict_t *d, const char *key, size_t klen, const char **err);
  double tg_shdict_ttl(tg_shdict_t *d, const char *key, size_t klen);
  int tg_shdict_expire(tg_shdict_t *d, const char *key, size_t klen, double exptime);
  void tg_shdict_flush_all(tg_shdict_t *d);
  int tg_shdict_flush_expired(tg_shdict_t *d, int max);
  int tg_shdict_get_keys(tg_shdict_t *d, int max, char **out);
  size_t tg_shdict_capacity(tg_shdict_t *d);
  size_t tg_shdict_free_space(tg_shdict_t *d);
  uint64_t tg_shdict_generation(void);
  void tg_shdict_bump_generation(void);
]]

local NIL, BOOLEAN, NUMBER, STRING = 0, 1, 3, 4
local SET, ADD, REPLACE, SAFE = 0, 1, 2, 0x10
local BUF_SIZE = 4096

local vtype = ffi_new("int[1]")
local flags_out = ffi_new("int[1]")
local num = ffi_new("double[1]")
local stale = ffi_new("int[1]")
local forcible = ffi_new("int[1]")
local errp = ffi_new("const char *[1]")
local scratch = ffi_new("char[?]", BUF_SIZE)
local bufp = ffi_new("char *[1]")
local blen = ffi_new("size_t[1]")
local keysp = ffi_new("char *[1]")

local function check_zone(zone, level)
  if type(zone) ~= "table" or type(zone[1]) ~= "cdata" then
    error('bad "zone" argument', level or 3)
  end
  return zone[1]
end

-- key checks as lua-resty-core: nil, "nil key" / "empty key" / "key too long"
local function check_key(key)
  if key == nil then
    return nil, "nil key"
  end
  if type(key) ~= "string" then
    key = tostring(key)
  end
  local n = #key
  if n == 0 then
    return nil, "empty key"
  end
  if n > 65535 then
    return nil, "key too long"
  end
  return key
end

-- The dict and the checked key of a method call: d, key | d, nil, err.
local function zone_key(zone, key)
  local d = check_zone(zone, 4) -- the method's caller
  return d, check_key(key)
end

-- The value the last get/pop left in the out-parameters.
local function take_value(t)
  if t == STRING then
    local p = bufp[0]
    local s = ffi_string(p, blen[0])
    if p ~= scratch then
      C.tg_shdict_free(p)
    end
    return s
  elseif t == NUMBER then
    return tonumber(num[0])
  elseif t == BOOLEAN then
    return num[0] ~= 0
  end
  return nil
end

local function store(zone, op, key, value, exptime, flags)
  local d = check_zone(zone)
  if exptime == nil then
    exptime = 0
  elseif type(exptime) ~= "number" or exptime < 0 then
    error('bad "exptime" argument', 3)
  end
  if flags == nil then
    flags = 0
  elseif type(flags) ~= "number" then
    error('bad "flags" argument', 3)
  end
  local k, kerr = check_key(key)
  if not k then
    return nil, kerr
  end
  local t, s, slen, n = NIL, nil, 0, 0
  local vt = type(value)
  if vt == "string" then
    t, s, slen = STRING, value, #value
  elseif vt == "number" then
    t, n = NUMBER, value
  elseif vt == "boolean" then
    t, n = BOOLEAN, value and 1 or 0
  elseif value ~= nil then
    return nil, "bad value type"
  end
  local rc = C.tg_shdict_store(d, op, k, #k, t, s, slen, n, exptime, flags, errp, forcible)
  if rc == 0 then
    return true, nil, forcible[0] == 1
  end
  return false, ffi_string(errp[0]), forcible[0] == 1
end

local function get(zone, key, get_stale)
  local d, k, kerr = zone_key(zone, key)
  if not k then
    return nil, kerr
  end
  bufp[0] = scratch
  blen[0] = BUF_SIZE
  if C.tg_shdict_get(d, k, #k, vtype, bufp, blen, num, flags_out, get_stale, stale) ~= 0 then
    return nil, "no memory"
  end
  local t = vtype[0]
  if t == NIL then
    return nil
  elseif t == 5 then
    return nil, "value is a list"
  end
  local v = take_value(t)
  local f = flags_out[0]
  if get_stale == 1 then
    return v, f ~= 0 and f or nil, stale[0] == 1
  end
  if f ~= 0 then
    return v, f
  end
  return v
end

local shdict = {}
shdict.__index = shdict

--- value, flags = dict:get(key)
function shdict.get(zone, key)
  return get(zone, key, 0)
end

--- value, flags, stale = dict:get_stale(key): also returns expired values.
function shdict.get_stale(zone, key)
  return get(zone, key, 1)
end

-- ok, err, forcible = dict:set/safe_set/add/safe_add/replace(key, value, exptime?, flags?)
for name, op in pairs { set = SET, safe_set = SET + SAFE, add = ADD, safe_add = ADD + SAFE,
                        replace = REPLACE } do
  shdict[name] = function(zone, key, value, exptime, flags)
    return store(zone, op, key, value, exptime, flags)
  end
end

function shdict.delete(zone, key)
  return store(zone, SET, key, nil)
end

--- newval, err, forcible = dict:incr(key, value, init?, init_ttl?)
function shdict.incr(zone, key, value, init, init_ttl)
  local d, k, kerr = zone_key(zone, key)
  if not k then
    return nil, kerr
  end
  local step = tonumber(value)
  if step == nil then
    error("cannot convert '" .. tostring(value) .. "' to 'double'", 2)
  end
  if init ~= nil then
    local t = type(init)
    init = tonumber(init)
    if init == nil then
      error("bad init arg: number expected, got " .. t, 2)
    end
  end
  if init_ttl ~= nil then
    local t = type(init_ttl)
    init_ttl = tonumber(init_ttl)
    if init_ttl == nil then
      error("bad init_ttl arg: number expected, got " .. t, 2)
    end
    if init_ttl < 0 then
      error('bad "init_ttl" argument', 2)
    end
    if init == nil then
      error('must provide "init" when providing "init_ttl"', 2)
    end
  end
  num[0] = step
  local rc = C.tg_shdict_incr(d, k, #k, num, init ~= nil and 1 or 0, init or 0,
                              init_ttl or 0, errp, forcible)
  if rc ~= 0 then
    return nil, ffi_string(errp[0])
  end
  if init == nil then
    return tonumber(num[0])
  end
  return tonumber(num[0]), nil, forcible[0] == 1
end

local function push(zone, key, value, left)
  local d, k, kerr = zone_key(zone, key)
  if not k then
    return nil, kerr
  end
  local t, s, slen, n
  local vt = type(value)
  if vt == "string" then
    t, s, slen, n = STRING, value, #value, 0
  elseif vt == "number" then
    t, s, slen, n = NUMBER, nil, 0, value
  else
    return nil, "bad value type"
  end
  local len = C.tg_shdict_push(d, k, #k, left, t, s, slen, n, errp)
  if len < 0 then
    return nil, ffi_string(errp[0])
  end
  return len
end

local function pop(zone, key, left)
  local d, k, kerr = zone_key(zone, key)
  if not k then
    return nil, kerr
  end
  bufp[0] = scratch
  blen[0] = BUF_SIZE
  if C.tg_shdict_pop(d, k, #k, left, vtype, bufp, blen, num, errp) ~= 0 then
    return nil, ffi_string(errp[0])
  end
  return take_value(vtype[0])
end

--- length, err = dict:lpush(key, value) (string or number values)
function shdict.lpush(zone, key, value) return push(zone, key, value, 1) end
function shdict.rpush(zone, key, value) return push(zone, key, value, 0) end
function shdict.lpop(zone, key) return pop(zone, key, 1) end
function shdict.rpop(zone, key) return pop(zone, key, 0) end

function shdict.llen(zone, key)
  local d, k, kerr = zone_key(zone, key)
  if not k then
    return nil, kerr
  end
  local n = C.tg_shdict_llen(d, k, #k, errp)
  if n < 0 then
    return nil, ffi_string(errp[0])
  end
  return n
end

--- ttl, err = dict:ttl(key): seconds left, 0 when the key never expires.
function shdict.ttl(zone, key)
  local d, k, kerr = zone_key(zone, key)
  if not k then
    return nil, kerr
  end
  local t = C.tg_shdict_ttl(d, k, #k)
  if t < 0 then
    return nil, "not found"
  end
  return t
end

function shdict.expire(zone, key, exptime)
  local d = check_zone(zone)
  if type(exptime) ~= "number" or exptime < 0 then
    error('bad "exptime" argument', 2)
  end
  local k, kerr = check_key(key)
  if not k then
    return nil, kerr
  end
  if C.tg_shdict_expire(d, k, #k, exptime) ~= 0 then
    return nil, "not found"
  end
  return true
end

function shdict.flush_all(zone)
  C.tg_shdict_flush_all(check_zone(zone))
end

function shdict.flush_expired(zone, max_count)
  local d = check_zone(zone)
  if max_count ~= nil and type(max_count) ~= "number" then
    error("bad argument #1 to 'flush_expired' (number expected, got " .. type(max_count)
          .. ")", 2)
  end
  return C.tg_shdict_flush_expired(d, max_count or 0)
end

function shdict.get_keys(zone, max_count)
  local d = check_zone(zone)
  if max_count ~= nil and type(max_count) ~= "number" then
    error("bad argument #1 to 'get_keys' (number expected, got " .. type(max_count) .. ")",
          2)
  end
  local n = C.tg_shdict_get_keys(d, max_count or 1024, keysp)
  if n < 0 then
    error("no memory", 2)
  end
  local p = keysp[0]
  local keys, off = {}, 0
  for i = 1, n do
    local len = byte(ffi_string(p + off, 1)) * 256 + byte(ffi_string(p + off + 1, 1))
    keys[i] = ffi_string(p + off + 2, len)
    off = off + 2 + len
  end
  C.tg_shdict_free(p)
  return keys
end

function shdict.capacity(zone)
  return tonumber(C.tg_shdict_capacity(check_zone(zone)))
end

function shdict.free_space(zone)
  return tonumber(C.tg_shdict_free_space(check_zone(zone)))
end

local M = {}

--- The ngx.shared table: one object per declared dict (tollgate.conf:
-- Kong's dicts, mem_cache_size, nginx_http_lua_shared_dict).
function M.new()
  C.tg_shdict_ensure()
  local shared = {}
  for i = 0, C.tg_shdict_count() - 1 do
    local name = ffi_string(C.tg_shdict_name_at(i))
    shared[name] = setmetatable({ C.tg_shdict_find(name, #name) }, shdict)
  end
  return shared
end

--- Memory of every dict: { name = { capacity = bytes, used = bytes } }
-- (Kong's /status lua_shared_dicts).
function M.stats()
  C.tg_shdict_ensure()
  local out = {}
  for i = 0, C.tg_shdict_count() - 1 do
    local name = ffi_string(C.tg_shdict_name_at(i))
    local d = C.tg_shdict_find(name, #name)
    local cap = tonumber(C.tg_shdict_capacity(d))
    out[name] = { capacity = cap, used = cap - tonumber(C.tg_shdict_free_space(d)) }
  end
  return out
end

M.methods = shdict
return M
