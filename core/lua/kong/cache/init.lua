-- kong.cache: Kong's node cache (kong.cache / kong.core_cache) with Kong's
-- API and mlcache's semantics: an L1 per worker (resty.lrucache), an L2 shared
-- by all workers (the shared dict `shm_name`, negative results in
-- `<shm_name>_miss`), and the L3 callback run by one caller at a time per key
-- (a lock in kong_locks). Invalidations reach the other workers' L1 through
-- an event log in the `kong` dict, read on each lookup.
local lrucache = require "resty.lrucache"
local buffer = require "string.buffer"
local ffi = require "ffi"
require "tollgate.shdict" -- the C declarations

local C = ffi.C

local encode, decode = buffer.encode, buffer.decode
local type, error, tostring, pairs, xpcall, pcall = type, error, tostring, pairs, xpcall, pcall
local setmetatable = setmetatable
local traceback = debug.traceback
local max = math.max
local band = require("bit").band
local rawget, tonumber = rawget, tonumber

local MISS = setmetatable({}, { __tostring = function() return "(cached miss)" end })
local STALE_FLAG = 1   -- a resurrected value (hit level 4)
local NEG_FLAG = 2     -- a cached miss (in shm_name itself when there is no _miss dict)
local L1_SIZE = 10000  -- items per worker (Kong sizes its L1 at 5e5 items)
local LOCK_EXPTIME = 10
local LOCK_TIMEOUT = 5
local EVENT_TTL = 300
local PURGE = "\0purge"
local CACHEABLE = { string = true, number = true, boolean = true, table = true }

local _M = {}
local mt = { __index = _M }

local function log(lvl, ...)
  return ngx.log(lvl, "[DB cache] ", ...)
end

local function check_ttl(opts, name, lvl)
  local v = opts[name]
  if v ~= nil then
    if type(v) ~= "number" then
      error("opts." .. name .. " must be a number", lvl)
    end
    if v < 0 then
      error("opts." .. name .. " must be >= 0", lvl)
    end
  end
  return v
end

--- cache, err = kong.cache.new{ shm_name = "kong_db_cache", ttl?, neg_ttl?,
-- resurrect_ttl?, lru_size?, invalidation_channel? }
function _M.new(opts)
  opts = opts or {}
  if type(opts.shm_name) ~= "string" then
    error("opts.shm_name must be a string", 2)
  end
  if opts.ttl and type(opts.ttl) ~= "number" then
    error("opts.ttl must be a number", 2)
  end
  if opts.neg_ttl and type(opts.neg_ttl) ~= "number" then
    error("opts.neg_ttl must be a number", 2)
  end
  if opts.resurrect_ttl and type(opts.resurrect_ttl) ~= "number" then
    error("opts.resurrect_ttl must be a number", 2)
  end
  if opts.invalidation_channel and type(opts.invalidation_channel) ~= "string" then
    error("opts.invalidation_channel must be a string", 2)
  end
  local shm = opts.shm_name
  local shared = ngx.shared or {}
  local dict = shared[shm]
  if not dict then
    log(ngx.ERR, "shared dictionary ", shm, " not found")
    return nil, "failed to instantiate mlcache: no such lua_shared_dict: " .. shm
  end
  local lru, err = lrucache.new(opts.lru_size or L1_SIZE)
  if not lru then
    return nil, "failed to instantiate mlcache: " .. tostring(err)
  end
  local events = shared.kong or dict
  local self = {
    shm_name = shm,
    dict = dict,
    miss = shared[shm .. "_miss"],
    locks = shared.kong_locks or dict,
    events = events,
    ev_prefix = "tg:cache:" .. shm .. ":",
    lru = lru,
    ttl = max(opts.ttl or 3600, 0),
    neg_ttl = max(opts.neg_ttl or 300, 0),
    resurrect_ttl = opts.resurrect_ttl or 30,
    invalidation_channel = opts.invalidation_channel or ("invalidations_" .. shm),
  }
  self.ev_seq_key = self.ev_prefix .. "seq"
  self.gen = C.tg_shdict_generation()
  self.seen = events:get(self.ev_seq_key) or 0
  return setmetatable(self, mt)
end

-- Tells every worker's L1 to drop `key` (PURGE: everything).
local function broadcast(self, key)
  local seq, err = self.events:incr(self.ev_seq_key, 1, 0)
  if not seq then
    log(ngx.ERR, "failed to broadcast cache invalidation: ", err)
    return
  end
  self.events:set(self.ev_prefix .. seq, key, EVENT_TTL)
  C.tg_shdict_bump_generation()
end

-- Applies the invalidations other workers (or this one) broadcast.
local function poll(self)
  local gen = C.tg_shdict_generation()
  if gen == self.gen then
    return -- no invalidation anywhere since the last look: no lock taken
  end
  self.gen = gen
  local seq = self.events:get(self.ev_seq_key) or 0
  local seen = self.seen
  if seq == seen then
    return
  end
  local lru = self.lru
  if seq < seen or seq - seen > 1000 then
    lru:flush_all()
  else
    for i = seen + 1, seq do
      local key = self.events:get(self.ev_prefix .. i)
      if key == nil or key == PURGE then
        -- lost (expired, or not written yet): drop everything, to be safe
        lru:flush_all()
        break
      end
      lru:delete(key)
    end
  end
  self.seen = seq
end

-- Puts a value in L1, through the call's l1_serializer if any; returns what
-- L1 holds (nil for a miss), or nil, err.
local function l1_set(self, key, value, ttl, ser)
  if value ~= nil and ser then
    local ok, v = pcall(ser, value)
    if not ok then
      return nil, "l1_serializer threw an error: " .. tostring(v)
    end
    if v == nil then
      return nil, "l1_serializer returned a nil value"
    end
    value = v
  end
  self.lru:set(key, value == nil and MISS or value, ttl and ttl > 0 and ttl or nil)
  return value
end

-- L2 lookup: value, nil, hit_level | nil, nil, nil, stale_value, went_stale
-- | nil, err
local function l2_get(self, key, ser)
  local nskey = self.shm_name .. key
  local dict = self.dict
  local v, flags, stale = dict:get_stale(nskey)
  if v == nil and self.miss then
    dict = self.miss
    v, flags, stale = dict:get_stale(nskey)
    flags = (flags or 0) + NEG_FLAG
  end
  if v == nil then
    return nil
  end
  flags = flags or 0
  local value
  if band(flags, NEG_FLAG) == 0 then
    value = decode(v)
  end
  if stale then
    return nil, nil, nil, value, true
  end
  local lv, err = l1_set(self, key, value, dict:ttl(nskey), ser)
  if err then
    return nil, err
  end
  return lv, nil, band(flags, STALE_FLAG) ~= 0 and 4 or 2
end

-- Stores a callback's result in L2 and L1: true, nil, the L1 value | nil, err.
-- Raises for values that cannot be cached (as mlcache).
local function l2_set(self, key, value, ttl, flags, ser)
  local nskey = self.shm_name .. key
  flags = flags or 0
  if value == nil then
    local dict = self.miss or self.dict
    if self.miss then
      self.dict:delete(nskey)
    else
      flags = flags + NEG_FLAG
    end
    local ok, err = dict:set(nskey, "", ttl, flags)
    if not ok then
      return nil, "could not write to lua_shared_dict '" .. self.shm_name .. "': " .. err
    end
  else
    local t = type(value)
    if not CACHEABLE[t] then
      error("cannot cache value of type " .. t, 4)
    end
    if self.miss then
      self.miss:delete(nskey)
    end
    local ok, err = self.dict:set(nskey, encode(value), ttl, flags)
    if not ok then
      return nil, "could not write to lua_shared_dict '" .. self.shm_name .. "': " .. err
    end
  end
  local lv, err = l1_set(self, key, value, ttl, ser)
  if err then
    return nil, err
  end
  return true, nil, lv
end

-- One caller runs the callback for a key at a time (across workers). Returns
-- true when the lock is held, or a value found meanwhile (hit level 2).
local function lock(self, key, ser)
  local lkey = "tg:cache:lock:" .. self.shm_name .. key
  if self.locks:add(lkey, true, LOCK_EXPTIME) then
    return lkey
  end
  local sleep = rawget(ngx, "sleep")
  local waited, step = 0, 0.001
  while waited < LOCK_TIMEOUT do
    if not sleep or not pcall(sleep, step) then
      return false -- cannot wait here (no timers, or a phase that cannot yield): run unlocked
    end
    waited = waited + step
    step = step < 0.05 and step * 2 or step
    local v, err, lvl = l2_get(self, key, ser)
    if lvl or err then
      return nil, v, lvl, err
    end
    if self.locks:add(lkey, true, LOCK_EXPTIME) then
      return lkey
    end
  end
  return nil, nil, nil, "could not acquire callback lock: timeout"
end

local function unlock(self, lkey, ...)
  if lkey then
    self.locks:delete(lkey)
  end
  return ...
end

local function check_opts(self, opts)
  local ttl, neg_ttl, resurrect_ttl, ser = self.ttl, self.neg_ttl, self.resurrect_ttl, nil
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("opts must be a table", 3)
    end
    ttl = check_ttl(opts, "ttl", 4) or ttl
    neg_ttl = check_ttl(opts, "neg_ttl", 4) or neg_ttl
    resurrect_ttl = check_ttl(opts, "resurrect_ttl", 4) or resurrect_ttl
    ser = opts.l1_serializer
    if ser ~= nil and type(ser) ~= "function" then
      error("opts.l1_serializer must be a function", 3)
    end
  end
  return ttl, neg_ttl, resurrect_ttl, ser
end

local function run_callback(self, key, ttl, neg_ttl, resurrect_ttl, ser, stale, went_stale,
                            cb, ...)
  local lkey, v, lvl, lerr = lock(self, key, ser)
  if lvl then
    return v, nil, lvl
  end
  if lerr then
    return nil, lerr
  end
  if lkey then
    -- filled by another worker while we took the lock?
    local v2, err2, lvl2 = l2_get(self, key, ser)
    if lvl2 or err2 then
      return unlock(self, lkey, v2, err2, lvl2)
    end
  end
  local ok, data, err, new_ttl = xpcall(cb, traceback, ...)
  if not ok then
    return unlock(self, lkey, nil, "callback threw an error: " .. tostring(data))
  end
  if err then
    err = tostring(err)
    if not went_stale or not resurrect_ttl or resurrect_ttl == 0 then
      return unlock(self, lkey, nil, err)
    end
    ngx.log(ngx.WARN, "callback returned an error (", err, ") but stale value found in ",
            "shm will be resurrected for ", resurrect_ttl, "s (resurrect_ttl)")
    local _, serr, lv = l2_set(self, key, stale, resurrect_ttl, STALE_FLAG, ser)
    if serr then
      ngx.log(ngx.WARN, "could not resurrect stale data (", serr, ")")
    else
      stale = lv
    end
    return unlock(self, lkey, stale, nil, 4)
  end
  if type(new_ttl) == "number" then
    if new_ttl < 0 then
      return unlock(self, lkey, data, nil, 3) -- not cached
    end
    if data == nil then
      neg_ttl = new_ttl
    else
      ttl = new_ttl
    end
  end
  local _, serr, lv = l2_set(self, key, data, data == nil and neg_ttl or ttl, nil, ser)
  if serr then
    return unlock(self, lkey, nil, serr)
  end
  return unlock(self, lkey, lv, nil, 3)
end

local function get(self, key, opts, cb, ...)
  if cb ~= nil and type(cb) ~= "function" then
    error("callback must be nil or a function", 3)
  end
  poll(self)
  local v = self.lru:get(key)
  if v == MISS then
    return nil, nil, 1
  elseif v ~= nil then
    return v, nil, 1
  end
  local ttl, neg_ttl, resurrect_ttl, ser = check_opts(self, opts)
  local value, err, lvl, stale, went_stale = l2_get(self, key, ser)
  if lvl or err then
    return value, err, lvl
  end
  if cb == nil then
    return nil, nil, -1
  end
  return run_callback(self, key, ttl, neg_ttl, resurrect_ttl, ser, stale, went_stale, cb, ...)
end

--- value, err, hit_level = cache:get(key, opts?, cb?, ...): 1 L1, 2 L2, 3 the
-- callback ran, 4 a resurrected stale value, -1 a miss without callback.
function _M:get(key, opts, cb, ...)
  if type(key) ~= "string" then
    error("key must be a string", 2)
  end
  local v, err, lvl = get(self, key, opts, cb, ...)
  if err then
    return nil, "failed to get from node cache: " .. err
  end
  return v, nil, lvl
end

--- res, err = cache:get_bulk({ key, opts, cb, arg, ..., n = N }, opts?):
-- res = { v1, err1, hit1, ..., n = N }.
function _M:get_bulk(bulk, opts)
  if type(bulk) ~= "table" then
    error("bulk must be a table", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("opts must be a table", 2)
  end
  if type(bulk.n) ~= "number" then
    error("bulk must have n field", 2)
  end
  for i = 1, bulk.n do
    local b = (i - 1) * 4
    if type(bulk[b + 1]) ~= "string" then
      error("key at index " .. (b + 1) .. " must be a string for operation " .. i ..
            " (got " .. type(bulk[b + 1]) .. ")", 2)
    end
    if type(bulk[b + 3]) ~= "function" then
      error("callback at index " .. (b + 3) .. " must be a function for operation " .. i ..
            " (got " .. type(bulk[b + 3]) .. ")", 2)
    end
  end
  local res = { n = bulk.n }
  for i = 1, bulk.n do
    local b = (i - 1) * 4
    local v, err, lvl = get(self, bulk[b + 1], bulk[b + 2], bulk[b + 3], bulk[b + 4])
    res[(i - 1) * 3 + 1] = v
    res[(i - 1) * 3 + 2] = err
    res[(i - 1) * 3 + 3] = lvl
  end
  return res
end

--- value, err, ttl = cache:renew(key, opts?, cb, ...): runs the callback
-- even when the key is cached, stores its result and drops every L1 copy.
function _M:renew(key, opts, cb, ...)
  if type(key) ~= "string" then
    error("key must be a string", 2)
  end
  local ttl, neg_ttl, _, ser = check_opts(self, opts)
  if type(cb) ~= "function" then
    error("callback must be a function", 2)
  end
  local ok, data, err, new_ttl = xpcall(cb, traceback, ...)
  if not ok then
    return nil, "failed to renew key in node cache: callback threw an error: " .. tostring(data)
  end
  if err then
    return nil, "failed to renew key in node cache: " .. tostring(err)
  end
  if type(new_ttl) == "number" then
    if new_ttl < 0 then
      return data, nil, new_ttl
    end
    if data == nil then neg_ttl = new_ttl else ttl = new_ttl end
  end
  local _, serr, lv = l2_set(self, key, data, data == nil and neg_ttl or ttl, nil, ser)
  if serr then
    return nil, "failed to renew key in node cache: " .. serr
  end
  broadcast(self, key)
  return lv, nil, data == nil and neg_ttl or ttl
end

--- ok, err = cache:safe_set(key, value): into L2 with the cache's ttl, never
-- evicting other entries.
function _M:safe_set(key, value)
  local t = type(value)
  if not CACHEABLE[t] then
    return nil, "cannot cache value of type " .. t
  end
  return self.dict:safe_set(self.shm_name .. key, encode(value), self.ttl)
end

--- ttl, err, value = cache:probe(key): the L2 entry's remaining ttl (0: none),
-- nil when the key is not cached.
function _M:probe(key)
  if type(key) ~= "string" then
    error("key must be a string", 2)
  end
  local nskey = self.shm_name .. key
  local v, flags = self.dict:get(nskey)
  if v ~= nil then
    local value
    if band(flags or 0, NEG_FLAG) == 0 then
      value = decode(v)
    end
    return self.dict:ttl(nskey), nil, value
  end
  if self.miss and self.miss:get(nskey) ~= nil then
    return self.miss:ttl(nskey), nil, nil
  end
  return nil
end

--- Drops key from this node's cache (every worker's L1 and the L2).
function _M:invalidate_local(key)
  if type(key) ~= "string" then
    error("key must be a string", 2)
  end
  log(ngx.DEBUG, self.shm_name, " invalidating (local): '", key, "'")
  local nskey = self.shm_name .. key
  self.lru:delete(key)
  self.dict:delete(nskey)
  if self.miss then
    self.miss:delete(nskey)
  end
  broadcast(self, key)
end

--- As invalidate_local; the cluster broadcast has no other node to reach in
-- a single-node (DB-less) setup.
function _M:invalidate(key)
  if type(key) ~= "string" then
    error("key must be a string", 2)
  end
  self:invalidate_local(key)
  log(ngx.DEBUG, "broadcasting (cluster) invalidation for key: '", key, "'")
end

--- Empties the cache on this node (all workers). (tollgate: `quiet` skips the
-- notice, for the purge of every configuration change.)
function _M:purge(quiet)
  if not quiet and ngx.get_phase() ~= "timer" then
    log(ngx.NOTICE, "purging (local) cache")
  end
  self.lru:flush_all()
  for _, d in pairs({ self.dict, self.miss }) do
    d:flush_all()
    d:flush_expired()
  end
  broadcast(self, PURGE)
end

--- The instances Kong sets up (kong.cache, kong.core_cache) for a
-- configuration: db_cache_ttl, db_cache_neg_ttl, db_resurrect_ttl; 0 (no
-- expiry) in DB-less mode, as Kong.
function _M.for_configuration(conf, shm_name, channel)
  local ttl, neg_ttl = conf.db_cache_ttl, conf.db_cache_neg_ttl
  if conf.database == "off" or conf.database == nil then
    ttl, neg_ttl = 0, 0
  end
  return _M.new({
    shm_name = shm_name,
    ttl = tonumber(ttl) or 0,
    neg_ttl = tonumber(neg_ttl) or tonumber(ttl) or 0,
    resurrect_ttl = tonumber(conf.db_resurrect_ttl) or 30,
    invalidation_channel = channel,
  })
end

return _M
