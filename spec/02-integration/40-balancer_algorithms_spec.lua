-- Upstreams and targets: each balancing algorithm through the real binary,
-- over separate tg_echo_server processes (X-Echo-Server-Port says which
-- target answered).
local helpers = require "spec.helpers"
local targets = require "spec.helpers.targets"
local cjson = require "cjson"
local socket = require "socket"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"
local P = { targets.port(1), targets.port(2), targets.port(3), targets.port(4), targets.port(5) }

local function addr(i) return "127.0.0.1:" .. P[i] end

local function keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("balancer algorithms", function()
  local bp
  local pids = {}
  local ring

  local function upstream(name, fields, tlist, route)
    fields = fields or {}
    fields.name = name
    local u = bp.upstreams:insert(fields)
    for _, t in ipairs(tlist) do
      bp.targets:insert { upstream = u, target = addr(t[1]), weight = t[2] }
    end
    local s = bp.services:insert { name = name, host = name, port = 80 }
    route.service = s
    route.name = name
    local r = bp.routes:insert(route)
    return u, r
  end

  lazy_setup(function()
    for i = 1, 4 do pids[i] = targets.start(P[i]) end
    pids[5] = targets.start(P[5], { delay = 0.05 })
    bp = helpers.get_db_utils("off", nil, { "tg-consumer" })
    upstream("rr", nil, { { 1, 100 }, { 2, 200 }, { 3, 0 } }, { paths = { "/rr" } })
    ring = upstream("ring", { hash_on = "header", hash_on_header = "X-Key" },
                    { { 1, 100 }, { 2, 100 }, { 3, 100 } }, { paths = { "/ring" } })
    upstream("hcookie", { hash_on = "cookie", hash_on_cookie = "sticky",
                          hash_on_cookie_path = "/hc" },
             { { 1, 100 }, { 2, 100 }, { 3, 100 } }, { paths = { "/hc" } })
    upstream("hip", { hash_on = "ip" }, { { 1, 100 }, { 2, 100 }, { 3, 100 } },
             { paths = { "/hip" } })
    upstream("hpath", { hash_on = "path" }, { { 1, 100 }, { 2, 100 }, { 3, 100 } },
             { paths = { "/hpath" } })
    upstream("hquery", { hash_on = "query_arg", hash_on_query_arg = "k",
                         hash_fallback = "header", hash_fallback_header = "x-key" },
             { { 1, 100 }, { 2, 100 }, { 3, 100 } }, { paths = { "/hq" } })
    upstream("hcap", { hash_on = "uri_capture", hash_on_uri_capture = "id" },
             { { 1, 100 }, { 2, 100 }, { 3, 100 } },
             { paths = { [[~/hcap/(?<id>[a-z0-9]+)]] } })
    local _, hcons = upstream("hcons", { hash_on = "consumer", hash_fallback = "header",
                        hash_fallback_header = "x-key" },
             { { 1, 100 }, { 2, 100 }, { 3, 100 } }, { paths = { "/hcons" } })
    bp.plugins:insert { name = "tg-consumer", route = hcons }
    upstream("lc", { algorithm = "least-connections" }, { { 1, 100 }, { 2, 100 } },
             { paths = { "/lc" } })
    upstream("lat", { algorithm = "latency" }, { { 1, 100 }, { 5, 100 } },
             { paths = { "/lat" } })
    upstream("hosthdr", { host_header = "example.test:8080" }, { { 1, 100 } },
             { paths = { "/hosthdr" } })
    assert(helpers.start_kong {
      database = "off",
      nginx_worker_processes = 1,
      plugins = "bundled,tg-consumer",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    for i, pid in pairs(pids) do targets.stop(pid, P[i]) end
  end)

  describe("round-robin", function()
    it("spreads by weight and never picks a weight 0 target", function()
      local by = targets.spread(300, "/rr")
      assert.equal(100, by[P[1]])
      assert.equal(200, by[P[2]])
      assert.is_nil(by[P[3]])
    end)
  end)

  describe("the Host sent upstream", function()
    it("is the target's host and port, or the upstream's host_header", function()
      local st, port, res = targets.get("/rr")
      assert.equal(200, st)
      assert.equal("127.0.0.1:" .. port, cjson.decode(res.body).headers.host)
      local _, _, res2 = targets.get("/hosthdr")
      assert.equal("example.test:8080", cjson.decode(res2.body).headers.host)
    end)
  end)

  describe("consistent-hashing", function()
    local function map_keys(n)
      local m = {}
      for i = 1, n do
        local st, port = targets.get("/ring", { ["X-Key"] = "key-" .. i })
        assert.equal(200, st)
        m[i] = port
      end
      return m
    end

    it("sends one header value to one target and spreads many values", function()
      local m = map_keys(300)
      local counts = {}
      for _, port in ipairs(m) do counts[port] = (counts[port] or 0) + 1 end
      assert.equal(3, keys(counts))
      for _, c in pairs(counts) do
        assert.is_true(c > 50 and c < 150, "uneven spread: " .. c)
      end
      for i = 1, 20 do
        local _, port = targets.get("/ring", { ["X-Key"] = "key-" .. i })
        assert.equal(m[i], port)
      end
    end)

    it("moves only the keys of a target added, and moves them back when it is removed", function()
      local before = map_keys(300)
      local t4 = bp.targets:insert { upstream = ring, target = addr(4), weight = 100 }
      assert(helpers.reload_kong())
      helpers.wait_until(function()
        local _, body = targets.admin("GET", "/upstreams/ring/health")
        return body and #body.data == 4
      end, 10)
      helpers.wait_until(function()
        for i = 1, 300 do
          local _, port = targets.get("/ring", { ["X-Key"] = "key-" .. i })
          if port == P[4] then return true end
        end
      end, 10)
      local after = map_keys(300)
      local moved = 0
      for i = 1, 300 do
        if after[i] ~= before[i] then
          moved = moved + 1
          assert.equal(P[4], after[i], "key-" .. i .. " moved between old targets")
        end
      end
      assert.is_true(moved > 30 and moved < 120, "moved: " .. moved)

      bp.targets:remove(t4)
      assert(helpers.reload_kong())
      helpers.wait_until(function()
        local _, body = targets.admin("GET", "/upstreams/ring/health")
        return body and #body.data == 3
      end, 10)
      helpers.pwait_until(function()
        assert.same(before, map_keys(300))
      end, 10)
    end)

    it("hash_on cookie sets the cookie when absent and sticks to it", function()
      local st, port, res = targets.get("/hc")
      assert.equal(200, st)
      local sc = res.headers["set-cookie"]
      assert.matches("^sticky=[0-9a-f%-]+; Path=/hc; Same%-Site=Lax; HttpOnly$", sc)
      local value = sc:match("^sticky=([^;]+)")
      for _ = 1, 10 do
        local st2, port2, res2 = targets.get("/hc", { Cookie = "a=b; sticky=" .. value })
        assert.equal(200, st2)
        assert.equal(port, port2)
        assert.is_nil(res2.headers["set-cookie"])
      end
      -- other cookies land elsewhere too
      local seen = {}
      for i = 1, 60 do
        local _, p = targets.get("/hc", { Cookie = "sticky=v" .. i })
        seen[p] = true
      end
      assert.equal(3, keys(seen))
    end)

    it("hash_on ip keeps one client on one target", function()
      local by = targets.spread(20, "/hip")
      assert.equal(1, keys(by))
    end)

    it("hash_on path keeps a path on one target and spreads paths", function()
      local seen = {}
      for i = 1, 60 do
        local _, p1 = targets.get("/hpath/x" .. i)
        local _, p2 = targets.get("/hpath/x" .. i)
        assert.equal(p1, p2)
        seen[p1] = true
      end
      assert.equal(3, keys(seen))
    end)

    it("hash_on query_arg sorts repeated values and falls back to the header", function()
      local seen = {}
      for i = 1, 60 do
        local _, p1 = targets.get("/hq?k=a" .. i .. "&k=b")
        local _, p2 = targets.get("/hq?x=1&k=b&k=a" .. i)
        assert.equal(p1, p2)
        seen[p1] = true
      end
      assert.equal(3, keys(seen))
      -- without the argument, the fallback header decides
      local _, f1 = targets.get("/hq", { ["x-key"] = "fallback-1" })
      for _ = 1, 5 do
        local _, f2 = targets.get("/hq?other=1", { ["x-key"] = "fallback-1" })
        assert.equal(f1, f2)
      end
    end)

    it("hash_on uri_capture hashes the named capture", function()
      local seen = {}
      for i = 1, 60 do
        local _, p1 = targets.get("/hcap/id" .. i .. "/a")
        local _, p2 = targets.get("/hcap/id" .. i .. "/b")
        assert.equal(p1, p2)
        seen[p1] = true
      end
      assert.equal(3, keys(seen))
    end)

    it("hash_on consumer hashes the consumer, else the credential, else the fallback", function()
      local seen = {}
      for i = 1, 60 do
        local _, p1 = targets.get("/hcons", { ["x-consumer-id"] = "c" .. i, ["x-key"] = "k1" })
        local _, p2 = targets.get("/hcons", { ["x-consumer-id"] = "c" .. i, ["x-key"] = "k2" })
        local _, p3 = targets.get("/hcons", { ["x-credential-id"] = "c" .. i, ["x-key"] = "k3" })
        assert.equal(p1, p2)
        assert.equal(p1, p3) -- the same id, as a credential
        seen[p1] = true
      end
      assert.equal(3, keys(seen))
      local _, f1 = targets.get("/hcons", { ["x-key"] = "only-fallback" })
      for _ = 1, 5 do
        local _, f2 = targets.get("/hcons", { ["x-key"] = "only-fallback" })
        assert.equal(f1, f2)
      end
    end)
  end)

  describe("least-connections", function()
    it("avoids the target busy with a request in flight", function()
      for _, p in ipairs({ P[1], P[2] }) do
        local c = helpers.http_client("127.0.0.1", p, 5000)
        assert(c:send { path = "/_echo/reset" })
        c:close()
      end
      -- a slow request holds one target
      local slow = socket.tcp()
      slow:settimeout(10)
      assert(slow:connect(helpers.test_conf.proxy_ip, helpers.test_conf.proxy_port))
      assert(slow:send("GET /lc/delay/1.5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
      -- wait until it reached a target (the other one then takes the rest)
      helpers.wait_until(function()
        for _, p in ipairs({ P[1], P[2] }) do
          local c = helpers.http_client("127.0.0.1", p, 5000)
          local res = c:send { path = "/_echo/count" }
          c:close()
          if res and cjson.decode(res.body).count > 0 then return true end
        end
      end, 10)
      local by = targets.spread(10, "/lc")
      local raw = slow:receive("*a")
      slow:close()
      local busy = tonumber(raw:match("[Xx]%-[Ee]cho%-[Ss]erver%-[Pp]ort: (%d+)"))
      assert.truthy(busy)
      assert.is_nil(by[busy])
      assert.equal(1, keys(by))
    end)
  end)

  describe("latency", function()
    it("prefers the faster target", function()
      local by = targets.spread(40, "/lat")
      assert.is_true((by[P[1]] or 0) >= 30, "fast target got " .. tostring(by[P[1]]))
      assert.is_true((by[P[5]] or 0) >= 1, "the slow target was never measured")
    end)
  end)
end)
