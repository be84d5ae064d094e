-- PDK functions through a real request that the other PDK specs leave out:
-- kong.node.get_memory_stats (every worker's Lua VM, the shared dicts),
-- kong.router.get_service, kong.service.request.set_headers/set_body,
-- kong.response.set_headers. The fixture is
-- spec/fixtures/custom_plugins/kong/plugins/pdk-more.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local function request(op, method, path, headers, body)
  headers = headers or {}
  headers["X-Op"] = op
  local client = helpers.proxy_client()
  local res = assert(client:send { method = method or "GET", path = path or "/more",
                                   headers = headers, body = body })
  local rbody = res:read_body()
  client:close()
  return res, rbody
end

local function json_of(op, ...)
  local res, body = request(op, ...)
  assert.equal(200, res.status, body)
  return cjson.decode(body), res
end

describe("PDK, the rest", function()
  local route, service

  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "pdk-more" })
    service = bp.services:insert { name = "more-svc" }
    route = bp.routes:insert { name = "more-route", service = service, paths = { "/more" } }
    bp.plugins:insert { name = "pdk-more", route = route, config = {} }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,pdk-more",
      lua_package_path = PLUGINS_PATH,
      nginx_worker_processes = 2,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  describe("kong.node.get_memory_stats", function()
    it("lists every worker's Lua VM, each under its own pid", function()
      local stats
      -- each worker records itself when it starts: both show up
      helpers.wait_until(function()
        stats = json_of("memstats")
        return #stats.bytes.workers_lua_vms == 2
      end, 10)
      local a, b = stats.bytes.workers_lua_vms[1], stats.bytes.workers_lua_vms[2]
      assert.is_number(a.pid)
      assert.is_number(b.pid)
      assert.is_true(a.pid < b.pid) -- sorted by pid, as Kong
      for _, w in ipairs(stats.bytes.workers_lua_vms) do
        assert.is_number(w.http_allocated_gc)
        assert.is_true(w.http_allocated_gc > 1024, "a Lua VM holds more than 1 KiB")
        assert.equal(math.floor(w.http_allocated_gc), w.http_allocated_gc)
      end
      -- the worker that answered is one of them, by ngx.worker.pid()
      assert.is_true(stats.worker_pid == a.pid or stats.worker_pid == b.pid)
    end)

    it("gives the shared dicts' capacity and use, and other units as text", function()
      local stats = json_of("memstats")
      local kong_dict = stats.bytes.lua_shared_dicts.kong
      assert.is_table(kong_dict)
      assert.is_number(kong_dict.capacity)
      assert.is_number(kong_dict.allocated_slabs)
      assert.is_true(kong_dict.allocated_slabs <= kong_dict.capacity)
      assert.is_table(stats.bytes.lua_shared_dicts.kong_db_cache)
      local kib = stats.kib.lua_shared_dicts.kong
      assert.matches("^%d+%.%d KiB$", kib.capacity)
      assert.equal(string.format("%.1f KiB", kong_dict.capacity / 1024), kib.capacity)
      for _, w in ipairs(stats.kib.workers_lua_vms) do
        assert.matches("^%d+%.%d KiB$", w.http_allocated_gc)
      end
      assert.equal("invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')", stats.bad_unit)
    end)
  end)

  it("kong.router.get_route and get_service, and ngx.ctx's route and service", function()
    local json = json_of("router")
    assert.equal(route.id, json.route)
    assert.equal("more-route", json.route_name)
    assert.equal(service.id, json.service)
    assert.equal("more-svc", json.service_name)
    assert.equal(route.id, json.ctx_route)
    assert.equal(service.id, json.ctx_service)
  end)

  describe("set_headers", function()
    it("kong.service.request.set_headers sets single and repeated headers upstream", function()
      local res, body = request("set_headers", "GET", "/more", { ["X-A"] = "old" })
      assert.equal(200, res.status)
      local echo = cjson.decode(body)
      assert.equal("1", echo.headers["x-a"])
      assert.same({ "2", "3" }, echo.headers["x-b"])
    end)

    it("kong.response.set_headers sets the client's headers", function()
      local res = request("set_headers")
      assert.equal("r", res.headers["x-r"])
      local rs = res.headers["x-rs"]
      assert.same({ "a", "b" }, type(rs) == "table" and rs or { rs })
    end)

    it("refuses what is not a table, as Kong", function()
      local json = json_of("set_headers_bad")
      assert.equal("headers must be a table", json.not_table)
      assert.equal("headers must be a table", json.resp_not_table)
    end)
  end)

  describe("kong.service.request.set_body", function()
    it("encodes JSON and sets its Content-Type", function()
      local res, body = request("body_json", "POST", "/more",
                                { ["Content-Type"] = "text/plain" }, "original")
      assert.equal(200, res.status)
      local echo = cjson.decode(body)
      assert.equal("application/json", echo.headers["content-type"])
      assert.same({ a = 1, list = { "x", "y" } }, cjson.decode(echo.body))
    end)

    it("encodes a form with its keys in order", function()
      local res, body = request("body_form", "POST", "/more", nil, "original")
      assert.equal(200, res.status)
      local echo = cjson.decode(body)
      assert.equal("application/x-www-form-urlencoded", echo.headers["content-type"])
      assert.equal("a=1&b=two%20words", echo.body)
    end)

    it("encodes multipart/form-data with the client's boundary", function()
      local res, body = request("body_multipart", "POST", "/more",
                                { ["Content-Type"] = "multipart/form-data; boundary=XyZ" },
                                "--XyZ\r\nContent-Disposition: form-data; name=\"old\"\r\n\r\n1\r\n--XyZ--\r\n")
      assert.equal(200, res.status)
      local echo = cjson.decode(body)
      assert.equal("multipart/form-data; boundary=XyZ", echo.headers["content-type"])
      assert.equal('--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n' ..
                   '--XyZ\r\nContent-Disposition: form-data; name="b"\r\n\r\ntwo\r\n' ..
                   "--XyZ--\r\n", echo.body)
    end)

    it("refuses what it cannot encode, with Kong's messages", function()
      local json = json_of("body_bad")
      assert.equal("args must be a table", json.not_table)
      assert.equal("unsupported content type text/plain", json.bad_mime)
      assert.equal("content type was neither explicitly given as an argument or received as a header",
                   json.no_type)
    end)
  end)
end)
