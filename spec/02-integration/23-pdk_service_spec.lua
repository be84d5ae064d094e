-- kong.service.set_upstream / set_target / set_retries / set_timeouts through
-- the real binary: the ps-service fixture plugin
-- (spec/fixtures/custom_plugins/kong/plugins/ps-service) calls them as the
-- request's X-Ps-* headers say, and separate tg_echo_server targets tell
-- (X-Echo-Server-Port) where each request went.
local helpers = require "spec.helpers"
local targets = require "spec.helpers.targets"
local cjson = require "cjson"
local pl_file = require "pl.file"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"
local P = { targets.port(11), targets.port(12), targets.port(13), targets.port(14) }
local DEAD = targets.port(19) -- nothing listens there
local HOSTS = os.tmpname()

local function get(path, headers, client)
  local c = client or helpers.proxy_client(10000)
  local res = assert(c:send { method = "GET", path = path, headers = headers })
  local body = res:read_body()
  if not client then c:close() end
  return res, body, tonumber(res.headers["x-echo-server-port"])
end

describe("kong.service (balancer overrides)", function()
  local pids = {}

  lazy_setup(function()
    for i = 1, 3 do pids[i] = targets.start(P[i]) end
    pids[4] = targets.start(P[4], { delay = 3 })
    assert(pl_file.write(HOSTS, "127.0.0.1 ps-svc.test\n"))
    local bp = helpers.get_db_utils("off", nil, { "ps-service" })
    -- the default: the mock upstream
    local s = bp.services:insert { name = "mock", host = helpers.mock_upstream_host,
                                   port = helpers.mock_upstream_port, retries = 0 }
    bp.routes:insert { service = s, paths = { "/ps" } }
    -- a name the config uses (dns.c resolves it from dns_hostsfile)
    local named = bp.services:insert { name = "named", host = "ps-svc.test", port = P[1] }
    bp.routes:insert { service = named, paths = { "/named" } }
    local up = bp.upstreams:insert { name = "ps-up" }
    bp.targets:insert { upstream = up, target = "127.0.0.1:" .. P[1], weight = 100 }
    bp.targets:insert { upstream = up, target = "127.0.0.1:" .. P[2], weight = 100 }
    local half = bp.upstreams:insert { name = "ps-half" }
    bp.targets:insert { upstream = half, target = "127.0.0.1:" .. DEAD, weight = 100 }
    bp.targets:insert { upstream = half, target = "127.0.0.1:" .. P[3], weight = 100 }
    bp.plugins:insert { name = "ps-service" }
    assert(helpers.start_kong {
      database = "off",
      nginx_worker_processes = 1,
      plugins = "bundled,ps-service",
      lua_package_path = PLUGINS_PATH,
      dns_hostsfile = HOSTS,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    for i, pid in pairs(pids) do targets.stop(pid, P[i]) end
    os.remove(HOSTS)
  end)

  describe("set_upstream", function()
    it("balances the request over the named Upstream's targets", function()
      local seen = {}
      for _ = 1, 10 do
        local res, body, port = get("/ps/x", { ["X-Ps-Upstream"] = "ps-up" })
        assert.equal(200, res.status)
        seen[port] = (seen[port] or 0) + 1
        -- the Host is the target's, as for a service naming the upstream
        assert.equal("127.0.0.1:" .. port, cjson.decode(body).headers.host)
      end
      assert.equal(5, seen[P[1]])
      assert.equal(5, seen[P[2]])
    end)

    it("returns Kong's error for an unknown Upstream", function()
      local res, body = get("/ps/x", { ["X-Ps-Upstream"] = "nope" })
      assert.equal(400, res.status)
      assert.equal("could not find an Upstream named 'nope'", cjson.decode(body).message)
    end)
  end)

  describe("set_target", function()
    it("sends the request to host:port, with host as the Host header", function()
      local res, body, port = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[3] })
      assert.equal(200, res.status)
      assert.equal(P[3], port)
      assert.equal("127.0.0.1", cjson.decode(body).headers.host)
    end)

    it("works from rewrite too and beats the service's upstream", function()
      local res, _, port = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[2],
                                          ["X-Ps-In-Rewrite"] = "1" })
      assert.equal(200, res.status)
      assert.equal(P[2], port)
    end)

    it("resolves localhost, and a name of the config through the resolver", function()
      local res, body, port = get("/ps/x", { ["X-Ps-Target"] = "localhost:" .. P[1] })
      assert.equal(200, res.status)
      assert.equal(P[1], port)
      assert.equal("localhost", cjson.decode(body).headers.host)
      res, body, port = get("/ps/x", { ["X-Ps-Target"] = "ps-svc.test:" .. P[3] })
      assert.equal(200, res.status)
      assert.equal(P[3], port)
      assert.equal("ps-svc.test", cjson.decode(body).headers.host)
    end)

    it("fails a name it cannot resolve with Kong's 500", function()
      local res, body = get("/ps/x", { ["X-Ps-Target"] = "no-such.invalid:" .. P[1] })
      assert.equal(500, res.status)
      assert.matches("failed the initial dns/balancer resolve for 'no-such.invalid' with: ",
                     cjson.decode(body).message, 1, true)
    end)

    it("lasts one request: the next on the same connection goes to the service", function()
      local c = helpers.proxy_client(10000)
      local _, _, port = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[1] }, c)
      assert.equal(P[1], port)
      _, _, port = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[2] }, c)
      assert.equal(P[2], port) -- not P[1]'s pooled connection
      local res, _, port3 = get("/ps/x", nil, c)
      assert.equal(200, res.status)
      assert.equal(helpers.mock_upstream_port, port3)
      c:close()
    end)
  end)

  describe("set_retries", function()
    it("overrides the service's retries", function()
      -- round-robin over a dead target and a live one, the service's retries 0:
      -- every other request fails without the override
      local failed = 0
      for _ = 1, 4 do
        local res = get("/ps/x", { ["X-Ps-Upstream"] = "ps-half" })
        if res.status == 502 then failed = failed + 1 end
      end
      assert.equal(2, failed)
      for _ = 1, 4 do
        local res, _, port = get("/ps/x", { ["X-Ps-Upstream"] = "ps-half",
                                            ["X-Ps-Retries"] = "1" })
        assert.equal(200, res.status)
        assert.equal(P[3], port)
      end
    end)

    it("0 stops at the first failure", function()
      local res = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. DEAD,
                                 ["X-Ps-Retries"] = "0" })
      assert.equal(502, res.status)
    end)
  end)

  describe("set_timeouts", function()
    it("overrides the service's read timeout", function()
      -- P[4] answers after 3 s; the service waits 60 s, the override 100 ms
      local res = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[4],
                                 ["X-Ps-Timeouts"] = "1000,1000,100" })
      assert.equal(504, res.status)
      res = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[4] })
      assert.equal(200, res.status)
    end)
  end)

  describe("arguments and phases", function()
    it("refuses bad arguments with Kong's messages", function()
      local res, body = get("/ps/x", { ["X-Ps-Errors"] = "1" })
      assert.equal(200, res.status)
      local json = cjson.decode(body)
      assert.equal("host must be a string", json.upstream_type)
      assert.equal("host must be a string", json.target_host)
      assert.equal("port must be an integer", json.target_port)
      assert.equal("port must be an integer between 0 and 65535: given -1", json.target_range)
      assert.equal("retries must be an integer", json.retries_type)
      assert.equal("retries must be an integer between 0 and 32767: given 32768",
                   json.retries_range)
      assert.equal("connect_timeout must be an integer", json.connect)
      assert.equal("write_timeout must be an integer between 1 and 2147483646: given 2147483647",
                   json.write)
      assert.equal("read_timeout must be an integer between 1 and 2147483646: given 0", json.read)
      assert.matches("not yet supported", json.tls_verify, 1, true)
    end)

    it("keeps set_upstream, set_retries and set_timeouts to access", function()
      local _, body = get("/ps/x", { ["X-Ps-Rewrite-Errors"] = "1" })
      local json = cjson.decode(body)
      local msg = "function cannot be called in rewrite phase (only in: access)"
      assert.equal(msg, json.set_upstream)
      assert.equal(msg, json.set_retries)
      assert.equal(msg, json.set_timeouts)
    end)
  end)
end)
