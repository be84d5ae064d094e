-- kong.cache (Kong's API, mlcache's semantics): L1 per worker, L2 in the
-- kong_db_cache shared dict, negative caching, TTLs, resurrection,
-- invalidation reaching the other workers' L1. A second instance over the same
-- dict stands for another worker (its own L1, the same L2).
local helpers = require "spec.helpers"
local shim = require "tollgate.ngx_shim"
shim.install()
local kong_cache = require "kong.cache"

-- polls f() until it is truthy (5 s at most)
local function eventually(f)
  helpers.wait_until(f, 5, 0.01)
end

local n = 0
local function new_pair(opts)
  n = n + 1
  opts = opts or {}
  opts.shm_name = "kong_db_cache"
  local a = assert(kong_cache.new(opts))
  local b = assert(kong_cache.new(opts))
  return a, b, "k" .. n .. ":"
end

describe("kong.cache", function()
  local calls
  local function loader(v) calls = calls + 1; return v end

  before_each(function() calls = 0 end)

  it("exists on the PDK as kong.cache and kong.core_cache", function()
    local kong = require("kong.pdk").new({ database = "off" })
    assert.equal("kong_db_cache", kong.cache.shm_name)
    assert.equal("kong_core_db_cache", kong.core_cache.shm_name)
    assert.equal(0, kong.cache.ttl) -- DB-less: no expiry, as Kong
    assert.equal("invalidations", kong.cache.invalidation_channel)
  end)

  it("runs the callback once, then answers from L1 and (other workers) L2", function()
    local a, b, p = new_pair()
    local v, err, lvl = a:get(p .. "x", nil, loader, { id = 1 })
    assert.same({ { id = 1 }, nil, 3 }, { v, err, lvl })
    v, err, lvl = a:get(p .. "x", nil, loader, { id = 2 })
    assert.same({ { id = 1 }, nil, 1 }, { v, err, lvl })
    v, err, lvl = b:get(p .. "x", nil, loader, { id = 3 })
    assert.same({ { id = 1 }, nil, 2 }, { v, err, lvl })
    assert.same({ { id = 1 }, nil, 1 }, { b:get(p .. "x", nil, loader) })
    assert.equal(1, calls)
    assert.same({ nil, nil, -1 }, { a:get(p .. "absent") })
  end)

  it("caches misses (negative caching) with neg_ttl", function()
    local a, b, p = new_pair({ ttl = 100, neg_ttl = 100 })
    assert.same({ nil, nil, 3 }, { a:get(p .. "m", { neg_ttl = 0.05 }, loader, nil) })
    assert.same({ nil, nil, 1 }, { a:get(p .. "m", nil, loader, "now here") })
    assert.same({ nil, nil, 2 }, { b:get(p .. "m", nil, loader, "now here") })
    assert.equal(1, calls)
    local ttl, err, value = a:probe(p .. "m")
    assert.is_true(ttl > 0 and ttl <= 0.05)
    assert.is_nil(err)
    assert.is_nil(value)
    eventually(function()
      local c, _ = kong_cache.new({ shm_name = "kong_db_cache" }), nil
      return c:get(p .. "m", nil, loader, "now here") == "now here"
    end)
  end)

  it("expires values after ttl; the callback's third value overrides it", function()
    local a, _, p = new_pair({ ttl = 100 })
    assert.equal("v1", a:get(p .. "t", { ttl = 0.05 }, loader, "v1"))
    eventually(function() return a:get(p .. "t", nil, loader, "v2") == "v2" end)
    assert.equal(2, calls)
    local function with_ttl() calls = calls + 1; return "short", nil, 0.05 end
    assert.equal("short", a:get(p .. "o", nil, with_ttl))
    local ttl = a:probe(p .. "o")
    assert.is_true(ttl <= 0.05)
    local function no_cache() calls = calls + 1; return "once", nil, -1 end
    assert.same({ "once", nil, 3 }, { a:get(p .. "nc", nil, no_cache) })
    assert.same({ nil, nil, -1 }, { a:get(p .. "nc") })
  end)

  it("probe answers the L2 entry's ttl and value", function()
    local a, _, p = new_pair({ ttl = 0 })
    assert.is_nil(a:probe(p .. "p"))
    a:get(p .. "p", nil, loader, "val")
    assert.same({ 0, nil, "val" }, { a:probe(p .. "p") })
    a:get(p .. "p2", { ttl = 50 }, loader, 5)
    local ttl, _, v = a:probe(p .. "p2")
    assert.is_true(ttl > 49 and ttl <= 50)
    assert.equal(5, v)
  end)

  it("invalidate drops the key from L2 and from every worker's L1", function()
    local a, b, p = new_pair()
    a:get(p .. "i", nil, loader, "old")
    b:get(p .. "i", nil, loader, "old")
    assert.same({ "old", nil, 1 }, { b:get(p .. "i") })
    a:invalidate(p .. "i")
    assert.is_nil(a:probe(p .. "i"))
    assert.same({ "new", nil, 3 }, { b:get(p .. "i", nil, loader, "new") })
    assert.same({ "new", nil, 2 }, { a:get(p .. "i", nil, loader, "newer") })
    b:invalidate_local(p .. "i")
    assert.same({ nil, nil, -1 }, { a:get(p .. "i") })
  end)

  it("purge empties L1 and L2 everywhere", function()
    local a, b, p = new_pair()
    a:get(p .. "1", nil, loader, 1)
    b:get(p .. "1", nil, loader, 1)
    b:purge()
    assert.same({ nil, nil, -1 }, { a:get(p .. "1") })
    assert.same({ nil, nil, -1 }, { b:get(p .. "1") })
  end)

  it("returns callback errors with Kong's prefix and caches nothing", function()
    local a, _, p = new_pair()
    assert.same({ nil, "failed to get from node cache: boom" },
                { a:get(p .. "e", nil, function() return nil, "boom" end) })
    local v, err = a:get(p .. "e", nil, function() error("thrown") end)
    assert.is_nil(v)
    assert.matches("^failed to get from node cache: callback threw an error: .*thrown", err)
    assert.same({ nil, nil, -1 }, { a:get(p .. "e") })
  end)

  it("resurrects a stale value for resurrect_ttl when the callback fails", function()
    local a, b, p = new_pair({ resurrect_ttl = 100 })
    a:get(p .. "r", { ttl = 0.05 }, loader, "good")
    eventually(function() return a:probe(p .. "r") == nil end)
    local fail = function() return nil, "db down" end
    local v, err, lvl
    eventually(function()
      v, err, lvl = b:get(p .. "r", nil, fail)
      return lvl == 4
    end)
    assert.equal("good", v)
    assert.is_nil(err)
    -- resurrected in L2: another worker sees it too, still flagged stale
    local c = assert(kong_cache.new({ shm_name = "kong_db_cache" }))
    assert.same({ "good", nil, 4 }, { c:get(p .. "r", nil, fail) })
    local ttl = c:probe(p .. "r")
    assert.is_true(ttl > 99)
  end)

  it("checks its arguments as Kong and mlcache", function()
    local a = new_pair()
    assert.has_error(function() a:get(1) end, "key must be a string")
    assert.has_error(function() a:get("k", nil, "nope") end,
                     "callback must be nil or a function")
    assert.has_error(function() a:get("k", { ttl = "x" }, loader) end,
                     "opts.ttl must be a number")
    assert.has_error(function() a:get("k", { neg_ttl = -1 }, loader) end,
                     "opts.neg_ttl must be >= 0")
    assert.has_error(function() a:get("fn", nil, function() return print end) end,
                     "cannot cache value of type function")
    assert.has_error(function() a:probe(1) end, "key must be a string")
    assert.has_error(function() a:invalidate(false) end, "key must be a string")
    assert.has_error(function() kong_cache.new({}) end, "opts.shm_name must be a string")
    assert.same({ nil, "failed to instantiate mlcache: no such lua_shared_dict: nope" },
                { kong_cache.new({ shm_name = "nope" }) })
  end)

  it("get_bulk runs several lookups", function()
    local a, _, p = new_pair()
    a:get(p .. "b1", nil, loader, "one")
    local res = a:get_bulk({
      p .. "b1", nil, loader, "ignored",
      p .. "b2", nil, loader, "two",
      p .. "b3", nil, function() return nil, "bad" end, nil,
      n = 3,
    })
    assert.same({ "one", nil, 1, "two", nil, 3, nil, "bad", nil, n = 3 }, res)
    assert.has_error(function() a:get_bulk({ "k", nil, loader, n = 1 }, "x") end,
                     "opts must be a table")
    assert.has_error(function() a:get_bulk({ 1, nil, loader, n = 1 }) end,
                     "key at index 1 must be a string for operation 1 (got number)")
  end)

  it("l1_serializer transforms what L1 holds (L2 keeps the raw value)", function()
    local a, b, p = new_pair({ ttl = 0 })
    local ser = function(v) return { wrapped = v } end
    assert.same({ { wrapped = "raw" }, nil, 3 },
                { a:get(p .. "s", { l1_serializer = ser }, loader, "raw") })
    assert.same({ { wrapped = "raw" }, nil, 1 }, { a:get(p .. "s", { l1_serializer = ser }) })
    assert.same({ { wrapped = "raw" }, nil, 2 }, { b:get(p .. "s", { l1_serializer = ser }) })
    assert.same({ 0, nil, "raw" }, { a:probe(p .. "s") })
    assert.same({ nil, "failed to get from node cache: l1_serializer returned a nil value" },
                { a:get(p .. "s2", { l1_serializer = function() end }, loader, 1) })
    local v, err = a:get(p .. "s3", { l1_serializer = function() error("no") end }, loader, 1)
    assert.is_nil(v)
    assert.matches("^failed to get from node cache: l1_serializer threw an error: .*no", err)
    assert.has_error(function() a:get(p .. "s4", { l1_serializer = 1 }, loader, 1) end,
                     "opts.l1_serializer must be a function")
  end)

  it("runs the callback once for concurrent lookups of a key (the others wait)", function()
    local a, b, p = new_pair()
    local function slow(v)
      calls = calls + 1
      ngx.sleep(0.1)
      return v
    end
    local t1 = ngx.thread.spawn(function() return a:get(p .. "c", nil, slow, "one") end)
    local t2 = ngx.thread.spawn(function() return b:get(p .. "c", nil, slow, "two") end)
    local _, v1, e1, l1 = ngx.thread.wait(t1)
    local _, v2, e2, l2 = ngx.thread.wait(t2)
    assert.equal(1, calls)
    assert.same({ "one", nil, 3 }, { v1, e1, l1 })
    assert.same({ "one", nil, 2 }, { v2, e2, l2 })
  end)

  it("renew reloads a cached key and safe_set writes L2", function()
    local a, b, p = new_pair({ ttl = 100 })
    a:get(p .. "n", nil, loader, "v1")
    b:get(p .. "n", nil, loader, "v1")
    assert.same({ "v2", nil, 100 }, { a:renew(p .. "n", nil, loader, "v2") })
    assert.same({ "v2", nil, 2 }, { b:get(p .. "n", nil, loader, "v3") })
    assert.same({ nil, "failed to renew key in node cache: no" },
                { a:renew(p .. "n", nil, function() return nil, "no" end) })
    assert.is_true((a:safe_set(p .. "s", { x = 1 })))
    assert.same({ { x = 1 }, nil, 2 }, { b:get(p .. "s") })
  end)
end)
