-- The status API (status_listen): /status, /status/ready (Kong's texts) and,
-- DB-less, the read-only upstream routes.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local function json_of(res, status)
  return cjson.decode(assert.res_status(status, res))
end

describe("status API", function()
  local client

  after_each(function()
    if client then client:close() end
    client = nil
  end)

  describe("with a loaded configuration", function()
    lazy_setup(function()
      local bp = helpers.get_db_utils("off")
      local s = bp.services:insert { name = "svc" }
      bp.routes:insert { service = s, paths = { "/svc" } }
      local u = bp.upstreams:insert { name = "up.test" }
      bp.targets:insert { upstream = u, target = "10.0.0.1:80" }
      assert(helpers.start_kong { database = "off" })
    end)

    lazy_teardown(function()
      helpers.stop_kong()
    end)

    before_each(function()
      client = helpers.status_client()
    end)

    it("serves /status as the Admin API does", function()
      local json = json_of(client:get("/status"), 200)
      assert.equal(32, #json.configuration_hash)
      assert.not_equal("00000000000000000000000000000000", json.configuration_hash)
      assert.is_number(json.server.total_requests)
      assert.is_nil(json.database)
      local admin = helpers.admin_client()
      local ajson = json_of(admin:get("/status"), 200)
      admin:close()
      assert.equal(json.configuration_hash, ajson.configuration_hash)
    end)

    it("answers /status/ready with 200 ready", function()
      helpers.wait_until(function()
        local c = helpers.status_client()
        local res = c:get("/status/ready")
        c:close()
        return res and res.status == 200
      end, 10)
      assert.same({ message = "ready" }, json_of(client:get("/status/ready"), 200))
    end)

    it("sends no CORS headers but Kong's header-filter ones", function()
      local res = client:get("/status")
      assert.res_status(200, res)
      assert.is_nil(res.headers["access-control-allow-origin"])
      assert.matches("^%d+$", res.headers["x-kong-admin-latency"])
      assert.matches("^tollgate/", res.headers["server"])
    end)

    it("serves upstream targets read-only", function()
      local json = json_of(client:get("/upstreams/up.test/targets"), 200)
      assert.equal(1, #json.data)
      assert.equal("10.0.0.1:80", json.data[1].target)
      json_of(client:get("/upstreams/up.test/targets/10.0.0.1:80"), 200)
      json_of(client:get("/upstreams/nope/targets"), 404)
      assert.same({ message = "Method not allowed" },
                  json_of(client:post("/upstreams/up.test/targets", { body = {} }), 405))
    end)

    it("does not serve the Admin API's other routes", function()
      assert.same({ message = "Not found" }, json_of(client:get("/services"), 404))
      assert.same({ message = "Not found" }, json_of(client:get("/config"), 404))
      assert.same({ message = "Method not allowed" }, json_of(client:delete("/status"), 405))
    end)

    it("turns not ready with 503 draining after POST status=draining", function()
      local res = client:post("/status/ready", { body = { status = "nope" },
                              headers = { ["Content-Type"] = "application/json" } })
      assert.res_status(400, res)
      assert.same({ message = "ready" }, json_of(client:get("/status/ready"), 200))
      res = client:post("/status/ready", { body = { status = "draining" },
                        headers = { ["Content-Type"] = "application/json" } })
      assert.res_status(204, res)
      assert.same({ message = "draining" }, json_of(client:get("/status/ready"), 503))
    end)
  end)

  describe("with an empty configuration", function()
    local function post_config(body)
      local admin = helpers.admin_client()
      local res = admin:post("/config", { body = body,
                             headers = { ["Content-Type"] = "application/json" } })
      admin:close()
      return res
    end

    lazy_setup(function()
      local bp = helpers.get_db_utils("off")
      bp.services:insert { name = "svc" }
      assert(helpers.start_kong { database = "off" })
      -- an empty config posted over the running one (the spec helpers wait
      -- for /status/ready, so the gateway cannot start on an empty config)
      assert.res_status(201, post_config({ _format_version = "3.0" }))
    end)

    lazy_teardown(function()
      helpers.stop_kong()
    end)

    before_each(function()
      client = helpers.status_client()
    end)

    it("answers 503 with Kong's reason", function()
      local json = json_of(client:get("/status/ready"), 503)
      assert.equal("no configuration available (empty configuration present)", json.message)
    end)

    it("reports Kong's empty configuration hash", function()
      local json = json_of(client:get("/status"), 200)
      assert.equal("00000000000000000000000000000000", json.configuration_hash)
    end)

    it("turns ready once a config is posted to the Admin API", function()
      local res = post_config({ _format_version = "3.0",
                                services = { { name = "s", url = helpers.mock_upstream_url,
                                               routes = { { name = "r", paths = { "/r" } } } } } })
      assert.res_status(201, res)
      helpers.wait_until(function()
        local c = helpers.status_client()
        local r = c:get("/status/ready")
        c:close()
        return r and r.status == 200
      end, 10)
    end)
  end)
end)
