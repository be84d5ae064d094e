-- ngx.shared.NAME (core/shdict.c through tollgate.shdict): every method of
-- lua-nginx-module's shared dictionary API, its return values and messages.
local ffi = require "ffi"
local helpers = require "spec.helpers"
local shim = require "tollgate.ngx_shim"

ffi.cdef [[ int tg_shdict_define(const char *name, size_t capacity); ]]
-- small dicts for the memory limits, declared as nginx_http_lua_shared_dict would
ffi.C.tg_shdict_define("sd_tiny", 12 * 1024)
ffi.C.tg_shdict_define("sd_unit", 1024 * 1024)

-- polls f() until it is truthy (5 s at most)
local function eventually(f)
  helpers.wait_until(f, 5, 0.01)
end

describe("ngx.shared", function()
  local ngx = shim.new()
  local d = ngx.shared.sd_unit

  before_each(function()
    d:flush_all()
    d:flush_expired()
  end)

  it("has Kong's dictionaries", function()
    for _, name in ipairs { "kong", "kong_locks", "kong_healthchecks", "kong_cluster_events",
                            "kong_rate_limiting_counters", "kong_core_db_cache",
                            "kong_core_db_cache_miss", "kong_db_cache", "kong_db_cache_miss",
                            "kong_secrets" } do
      assert.is_table(ngx.shared[name], name)
    end
    assert.equal(5 * 1024 * 1024, ngx.shared.kong:capacity())
    assert.equal(12 * 1024 * 1024, ngx.shared.kong_db_cache_miss:capacity())
    assert.is_nil(ngx.shared.no_such_dict)
  end)

  describe("set / get", function()
    it("stores strings, numbers, booleans with flags", function()
      assert.same({ true, nil, false }, { d:set("s", "hello") })
      assert.equal("hello", d:get("s"))
      assert(d:set("n", 3.5))
      assert.equal(3.5, d:get("n"))
      assert(d:set("t", true))
      assert(d:set("f", false))
      assert.is_true(d:get("t"))
      assert.is_false(d:get("f"))
      assert(d:set("flagged", "v", 0, 42))
      assert.same({ "v", 42 }, { d:get("flagged") })
      local big = string.rep("x", 100000)
      assert(d:set("big", big))
      assert.equal(big, d:get("big"))
      assert(d:set("empty", ""))
      assert.equal("", d:get("empty"))
    end)

    it("replaces values of any size and type", function()
      assert(d:set("k", "short"))
      assert(d:set("k", string.rep("y", 5000)))
      assert.equal(5000, #d:get("k"))
      assert(d:set("k", 7))
      assert.equal(7, d:get("k"))
    end)

    it("deletes with a nil value and with delete()", function()
      assert(d:set("k", "v"))
      assert(d:set("k", nil))
      assert.is_nil(d:get("k"))
      assert(d:set("k", "v"))
      assert.same({ true, nil, false }, { d:delete("k") })
      assert.is_nil(d:get("k"))
    end)

    it("stringifies non-string keys and checks keys as OpenResty", function()
      assert(d:set(12, "twelve"))
      assert.equal("twelve", d:get("12"))
      assert.same({ nil, "nil key" }, { d:get(nil) })
      assert.same({ nil, "empty key" }, { d:get("") })
      assert.same({ nil, "key too long" }, { d:set(string.rep("k", 65536), 1) })
      assert.same({ nil, "nil key" }, { d:set(nil, 1) })
    end)

    it("refuses other value types, bad exptime and a missing zone", function()
      assert.same({ nil, "bad value type" }, { d:set("k", {}) })
      assert.same({ nil, "bad value type" }, { d:set("k", print) })
      assert.has_error(function() d:set("k", 1, -1) end, 'bad "exptime" argument')
      assert.has_error(function() d.get("k") end, 'bad "zone" argument')
      assert.has_error(function() d.set() end, 'bad "zone" argument')
    end)

    it("expires values and get_stale still sees them", function()
      assert(d:set("k", "v", 0.05, 3))
      eventually(function() return d:get("k") == nil end)
      assert.same({ "v", 3, true }, { d:get_stale("k") })
      assert(d:set("fresh", "x"))
      assert.same({ "x", nil, false }, { d:get_stale("fresh") })
      assert.is_nil(d:get_stale("missing"))
    end)
  end)

  describe("add / replace and the safe_ variants", function()
    it("add refuses existing keys, accepts expired ones", function()
      assert.same({ true, nil, false }, { d:add("k", 1) })
      assert.same({ false, "exists", false }, { d:add("k", 2) })
      assert.equal(1, d:get("k"))
      assert(d:set("e", 1, 0.02))
      eventually(function() return d:get("e") == nil end)
      assert.is_true((d:add("e", 2)))
      assert.same({ true, nil, false }, { d:safe_add("s", 1) })
      assert.same({ false, "exists", false }, { d:safe_add("s", 1) })
    end)

    it("replace only replaces live keys", function()
      assert.same({ false, "not found", false }, { d:replace("k", 1) })
      assert(d:set("k", 1))
      assert.same({ true, nil, false }, { d:replace("k", "two") })
      assert.equal("two", d:get("k"))
      assert(d:set("e", 1, 0.02))
      eventually(function() return d:get("e") == nil end)
      assert.same({ false, "not found", false }, { d:replace("e", 1) })
    end)
  end)

  describe("memory", function()
    local tiny = ngx.shared.sd_tiny

    before_each(function()
      tiny:flush_all()
      tiny:flush_expired()
    end)

    it("evicts the least recently used entries when full (forcible)", function()
      local value = string.rep("v", 1000)
      local forced = false
      for i = 1, 30 do
        local ok, err, forcible = tiny:set("k" .. i, value)
        assert.is_true(ok, err)
        forced = forced or forcible
        assert(tiny:get("k1"), "k1 is read on every round, so it stays")
      end
      assert.is_true(forced)
      assert.is_nil(tiny:get("k2"))
      assert.equal(value, tiny:get("k30"))
      assert.is_true(tiny:free_space() < 12 * 1024)
    end)

    it("safe_set and safe_add answer 'no memory' instead of evicting", function()
      local value = string.rep("v", 1000)
      local i = 0
      repeat
        i = i + 1
        local ok, err = tiny:safe_set("k" .. i, value)
      until not ok or i > 100
      assert.same({ false, "no memory", false }, { tiny:safe_set("more", value) })
      assert.same({ false, "no memory", false }, { tiny:safe_add("more", value) })
      assert.equal(value, tiny:get("k1"))
      assert.same({ false, "no memory", false }, { tiny:set("huge", string.rep("h", 20000)) })
    end)

    it("reports capacity and free space", function()
      assert.equal(12 * 1024, tiny:capacity())
      local before = tiny:free_space()
      assert(tiny:set("k", string.rep("x", 2000)))
      assert.is_true(tiny:free_space() <= before - 2000)
      tiny:delete("k")
      assert.equal(before, tiny:free_space())
    end)
  end)

  describe("incr", function()
    it("adds to numbers", function()
      assert(d:set("n", 10))
      assert.same({ 11 }, { d:incr("n", 1) })
      assert.same({ 8.5 }, { d:incr("n", -2.5) })
      assert.same({ 8.5 }, { d:incr("n", "0") })
    end)

    it("answers not found / not a number", function()
      assert.same({ nil, "not found" }, { d:incr("missing", 1) })
      assert(d:set("s", "str"))
      assert.same({ nil, "not a number" }, { d:incr("s", 1) })
    end)

    it("creates missing keys from init, with init_ttl", function()
      assert.same({ 6, nil, false }, { d:incr("c", 1, 5) })
      assert.same({ 7, nil, false }, { d:incr("c", 1, 5) })
      assert.equal(0, d:ttl("c"))
      assert.same({ 2, nil, false }, { d:incr("t", 1, 1, 0.05) })
      local ttl = d:ttl("t")
      assert.is_true(ttl > 0 and ttl <= 0.05)
      eventually(function() return d:get("t") == nil end)
      assert.same({ 11, nil, false }, { d:incr("t", 1, 10) })
    end)

    it("checks its arguments", function()
      assert.has_error(function() d:incr("c", "x") end, "cannot convert 'x' to 'double'")
      assert.has_error(function() d:incr("c", 1, nil, 10) end,
                       'must provide "init" when providing "init_ttl"')
      assert.has_error(function() d:incr("c", 1, 0, -1) end, 'bad "init_ttl" argument')
      assert.has_error(function() d:incr("c", 1, {}) end,
                       "bad init arg: number expected, got table")
    end)
  end)

  describe("lists", function()
    it("pushes and pops at both ends", function()
      assert.same({ 1 }, { d:lpush("l", "b") })
      assert.same({ 2 }, { d:lpush("l", "a") })
      assert.same({ 3 }, { d:rpush("l", 3) })
      assert.equal(3, d:llen("l"))
      assert.equal("a", d:lpop("l"))
      assert.equal(3, d:rpop("l"))
      assert.equal("b", d:rpop("l"))
      assert.is_nil(d:lpop("l"))
      assert.equal(0, d:llen("l"))
      assert.is_nil(d:get("l"))
    end)

    it("refuses non-lists and bad values", function()
      assert(d:set("s", "v"))
      assert.same({ nil, "value not a list" }, { d:lpush("s", "x") })
      assert.same({ nil, "value not a list" }, { d:rpop("s") })
      assert.same({ nil, "value not a list" }, { d:llen("s") })
      assert.same({ nil, "bad value type" }, { d:rpush("l", true) })
      assert.same({ nil, "bad value type" }, { d:rpush("l", nil) })
      assert(d:rpush("l", "x"))
      assert.same({ nil, "value is a list" }, { d:get("l") })
    end)

    it("expire and ttl apply to lists", function()
      assert(d:rpush("l", "x"))
      assert(d:expire("l", 0.05))
      eventually(function() return d:llen("l") == 0 end)
      assert.is_nil(d:lpop("l"))
      assert.same({ 1 }, { d:rpush("l", "new") })
    end)
  end)

  describe("ttl / expire", function()
    it("reads and changes expiry", function()
      assert(d:set("k", "v"))
      assert.equal(0, d:ttl("k"))
      assert.is_true(d:expire("k", 100))
      local ttl = d:ttl("k")
      assert.is_true(ttl > 99 and ttl <= 100)
      assert.is_true(d:expire("k", 0))
      assert.equal(0, d:ttl("k"))
      assert.same({ nil, "not found" }, { d:ttl("missing") })
      assert.same({ nil, "not found" }, { d:expire("missing", 1) })
      assert.has_error(function() d:expire("k") end, 'bad "exptime" argument')
      assert(d:expire("k", 0.02))
      eventually(function() return d:get("k") == nil end)
      assert.same({ nil, "not found" }, { d:ttl("k") })
    end)
  end)

  describe("flush_all / flush_expired / get_keys", function()
    it("flush_all expires everything, flush_expired frees it", function()
      for i = 1, 5 do assert(d:set("k" .. i, i)) end
      assert.equal(0, d:flush_expired())
      local used = d:capacity() - d:free_space()
      assert.is_true(used > 0)
      d:flush_all()
      assert.is_nil(d:get("k1"))
      assert.same({ 1, nil, true }, { d:get_stale("k1") })
      assert.same({}, d:get_keys())
      assert.equal(2, d:flush_expired(2))
      assert.equal(3, d:flush_expired())
      assert.equal(d:capacity(), d:free_space())
    end)

    it("get_keys lists live keys, 1024 by default, 0 for all", function()
      for i = 1, 1100 do assert(d:set("k" .. i, i)) end
      assert(d:set("gone", 1, 0.01))
      eventually(function() return d:get("gone") == nil end)
      assert.equal(1024, #d:get_keys())
      assert.equal(1100, #d:get_keys(0))
      local keys = d:get_keys(3)
      assert.equal(3, #keys)
      for _, k in ipairs(d:get_keys(0)) do
        assert.not_equal("gone", k)
      end
    end)
  end)
end)
