-- ngx.shared, ngx.re and kong.cache from plugins, through the real binary
-- with two workers: what one worker stores, the other sees.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local function get(path, headers)
  local client = helpers.proxy_client()
  local res = assert(client:get(path, { headers = headers }))
  local body = res:read_body()
  client:close()
  return res.status, cjson.decode(body)
end

-- Requests until `pred(status, body)` holds (new connection each time, so
-- both workers answer sooner or later); returns that answer.
local function poll(path, headers, pred, what)
  local s, b
  helpers.wait_until(function()
    s, b = get(path, headers)
    return pred(s, b)
  end, 20, 0.01)
  return s, b
end

describe("shared dictionaries and kong.cache across workers", function()
  local bp, s

  lazy_setup(function()
    bp = helpers.get_db_utils("off", nil, { "sd-cache", "sd-shared" })
    s = bp.services:insert { name = "s1" }
    bp.plugins:insert { name = "sd-cache",
                        route = bp.routes:insert { service = s, paths = { "/cache" } } }
    bp.plugins:insert { name = "sd-cache", config = { ttl = 0.3, neg_ttl = 0.3 },
                        route = bp.routes:insert { service = s, paths = { "/ttl" } } }
    bp.plugins:insert { name = "sd-shared", config = { dict = "sd_custom" },
                        route = bp.routes:insert { service = s, paths = { "/shared" },
                                                   strip_path = false } }
    bp.plugins:insert { name = "sd-shared", config = { dict = "kong_rate_limiting_counters",
                                                       exptime = 0.3 },
                        route = bp.routes:insert { service = s, paths = { "/expiring" },
                                                   strip_path = false } }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,sd-cache,sd-shared",
      lua_package_path = PLUGINS_PATH,
      nginx_worker_processes = 2,
      nginx_http_lua_shared_dict = "sd_custom 1m; lua_shared_dict sd_other 64k",
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  describe("ngx.shared", function()
    it("declares custom dicts from nginx_http_lua_shared_dict", function()
      local s, b = get("/shared/capacity/x")
      assert.equal(200, s)
      assert.equal(1024 * 1024, b.result)
      assert.equal("X", b.upper) -- ngx.re.gsub with a function, in a worker
    end)

    it("reports each dict's memory in the Admin API's /status, as Kong", function()
      local _, b = get("/shared/set/memory/" .. string.rep("m", 4000))
      assert.is_true(b.result)
      local client = helpers.admin_client()
      local res = assert(client:get("/status?unit=k&scale=0"))
      local json = cjson.decode(assert.res_status(200, res))
      client:close()
      local dicts = json.memory.lua_shared_dicts
      assert.same({ allocated_slabs = dicts.sd_custom.allocated_slabs, capacity = "1024 KiB" },
                  dicts.sd_custom)
      assert.matches("^%d+ KiB$", dicts.sd_custom.allocated_slabs)
      assert.is_true(tonumber(dicts.sd_custom.allocated_slabs:match("%d+")) >= 4)
      assert.equal("64 KiB", dicts.sd_other.capacity)
      assert.equal("131072 KiB", dicts.kong_db_cache.capacity) -- mem_cache_size 128m
      assert.equal("5120 KiB", dicts.kong.capacity)
    end)

    it("a value one worker sets, the other worker reads", function()
      local s, set = get("/shared/set/greeting/hello")
      assert.equal(200, s)
      assert.is_true(set.result)
      local _, b = poll("/shared/get/greeting", nil, function(st, body)
        return st == 200 and body.worker ~= set.worker
      end)
      assert.equal("hello", b.result)
      assert.equal("GREETING", b.upper)
    end)

    it("incr counts every request of every worker", function()
      local workers = {}
      for i = 1, 40 do
        local s, b = get("/shared/incr/hits")
        assert.equal(200, s)
        assert.equal(i, b.result)
        workers[b.worker] = true
      end
      poll("/shared/incr/other", nil, function(_, b) workers[b.worker] = true
        return workers[0] and workers[1]
      end)
      local _, b = get("/shared/get/hits")
      assert.equal(40, b.result)
    end)

    it("a list filled by both workers is drained in order by both", function()
      local workers = {}
      for i = 1, 20 do
        local _, b = get("/shared/lpush/jobs/j" .. i)
        assert.equal(i, b.result)
        workers[b.worker] = true
      end
      for i = 1, 20 do
        local _, b = get("/shared/rpop/jobs")
        assert.equal("j" .. i, b.result)
        workers[b.worker] = true
      end
      local _, b = get("/shared/rpop/jobs")
      assert.is_nil(b.result)
      assert.is_true(workers[0] and workers[1])
    end)

    it("values expire for every worker", function()
      local _, set = get("/expiring/set/short/v")
      assert.is_true(set.result)
      poll("/expiring/get/short", nil, function(st, body)
        return st == 200 and body.result == nil
      end)
      local _, b = get("/expiring/ttl/short")
      assert.equal("not found", b.err)
    end)
  end)

  describe("kong.cache", function()
    it("loads once, then answers from L1 or (other worker) L2", function()
      local h = { ["X-Key"] = "user:1", ["X-Value"] = "alice" }
      local s, b = get("/cache", h)
      assert.equal(200, s)
      assert.same({ "alice", 3 }, { b.value, b.hit })
      local loader = b.worker
      h["X-Value"] = "changed"
      -- the other worker finds it in the shared dict (hit level 2)
      local _, o = poll("/cache", h, function(st, body)
        return st == 200 and body.worker ~= loader
      end)
      assert.equal("alice", o.value)
      assert.equal(2, o.hit)
      -- and each worker then answers from its L1
      local seen = {}
      poll("/cache", h, function(_, body)
        assert.equal("alice", body.value)
        if body.hit == 1 then seen[body.worker] = true end
        return seen[0] and seen[1]
      end)
    end)

    it("probe answers the ttl and value", function()
      get("/cache", { ["X-Key"] = "probe:1", ["X-Value"] = "p" })
      local _, b = get("/cache", { ["X-Key"] = "probe:1", ["X-Op"] = "probe" })
      assert.equal(0, b.ttl) -- DB-less: no expiry
      assert.equal("p", b.value)
      _, b = get("/cache", { ["X-Key"] = "probe:none", ["X-Op"] = "probe" })
      assert.is_nil(b.ttl)
    end)

    it("caches misses (negative caching)", function()
      local _, b = get("/cache", { ["X-Key"] = "neg:1", ["X-Value"] = "" })
      assert.same({ cjson.null, 3 }, { b.value or cjson.null, b.hit })
      for _ = 1, 10 do
        local s
        s, b = get("/cache", { ["X-Key"] = "neg:1", ["X-Value"] = "now there" })
        assert.equal(200, s)
        assert.is_nil(b.value)
        assert.is_true(b.hit == 1 or b.hit == 2)
      end
      local ttl
      _, ttl = get("/cache", { ["X-Key"] = "neg:1", ["X-Op"] = "probe" })
      assert.equal(0, ttl.ttl)
    end)

    it("invalidate reaches both workers", function()
      local h = { ["X-Key"] = "inv:1", ["X-Value"] = "old" }
      local seen = {}
      poll("/cache", h, function(_, body)
        assert.equal("old", body.value)
        seen[body.worker] = true
        return seen[0] and seen[1]
      end)
      local _, inv = get("/cache", { ["X-Key"] = "inv:1", ["X-Op"] = "invalidate" })
      assert.equal("inv:1", inv.invalidated)
      h["X-Value"] = "new"
      seen = {}
      poll("/cache", h, function(_, body)
        assert.equal("new", body.value, "worker " .. body.worker .. " still had the old value")
        seen[body.worker] = true
        return seen[0] and seen[1]
      end)
    end)

    it("ttl and neg_ttl from the plugin's options expire entries", function()
      local h = { ["X-Key"] = "ttl:1", ["X-Value"] = "first" }
      local _, b = get("/ttl", h)
      assert.equal("first", b.value)
      h["X-Value"] = "second"
      poll("/ttl", h, function(_, body) return body.value == "second" end)
      h = { ["X-Key"] = "ttl:neg", ["X-Value"] = "" }
      _, b = get("/ttl", h)
      assert.is_nil(b.value)
      h["X-Value"] = "arrived"
      poll("/ttl", h, function(_, body) return body.value == "arrived" end)
    end)

    it("a new configuration flushes the cache of every worker, as Kong's reconfigure",
       function()
      local h = { ["X-Key"] = "reload:1", ["X-Value"] = "before" }
      local seen = {}
      poll("/cache", h, function(_, body)
        assert.equal("before", body.value)
        seen[body.worker] = true
        return seen[0] and seen[1]
      end)
      bp.plugins:insert { name = "sd-cache",
                          route = bp.routes:insert { service = s, paths = { "/added" } } }
      assert(helpers.reload_kong())
      seen = {}
      poll("/added", { ["X-Key"] = "other", ["X-Value"] = "x" }, function(st, body)
        if st == 200 then seen[body.worker] = true end
        return seen[0] and seen[1]
      end)
      h["X-Value"] = "after"
      seen = {}
      poll("/cache", h, function(_, body)
        assert.equal("after", body.value)
        seen[body.worker] = true
        return seen[0] and seen[1]
      end)
    end)

    it("loader errors answer the plugin's 500 and are not cached", function()
      local s, b = get("/cache", { ["X-Key"] = "err:1", ["X-Value"] = "error" })
      assert.equal(500, s)
      assert.equal("failed to get from node cache: loader failed for err:1", b.message)
      s, b = get("/cache", { ["X-Key"] = "err:1", ["X-Value"] = "throw" })
      assert.equal(500, s)
      assert.matches("^failed to get from node cache: callback threw an error: .*loader threw",
                     b.message)
      s, b = get("/cache", { ["X-Key"] = "err:1", ["X-Value"] = "fine" })
      assert.equal(200, s)
      assert.same({ "fine", 3 }, { b.value, b.hit })
    end)
  end)
end)

describe("shared dicts from the command line", function()
  local conf = os.tmpname()

  lazy_setup(function()
    local f = assert(io.open(conf, "w"))
    f:write("database = off\n")
    f:close()
  end)

  lazy_teardown(function()
    os.remove(conf)
  end)

  it("is refused with the field and the reason", function()
    local ok, err, out = helpers.kong_exec("check " .. conf, {
      nginx_http_lua_shared_dict = "just_a_name",
    })
    assert.is_false(ok)
    assert.matches("nginx_http_lua_shared_dict: invalid lua_shared_dict 'just_a_name' "
                   .. "(expected: name size)", (err or "") .. (out or ""), 1, true)
    ok, err, out = helpers.kong_exec("check " .. conf, {
      nginx_http_lua_shared_dict = "d 10q",
    })
    assert.is_false(ok)
    assert.matches("invalid lua_shared_dict size '10q' for 'd'", (err or "") .. (out or ""),
                   1, true)
  end)

  it("tollgate lua runs with ngx.shared and ngx.re, as OpenResty's resty", function()
    local f = os.tmpname()
    local fh = assert(io.open(f, "w"))
    fh:write([[
      assert(ngx.shared.kong:set("k", 41))
      print(ngx.shared.kong:incr("k", 1), ngx.shared.kong_db_cache:capacity(),
            ngx.re.match("key=val", [=[(?<k>\w+)=(\w+)]=], "jo").k)
    ]])
    fh:close()
    local ok, err, out = helpers.kong_exec("lua " .. f)
    os.remove(f)
    assert.is_true(ok, err)
    assert.equal("42\t134217728\tkey\n", out)
  end)
end)
