-- The Admin API, DB-less: Kong 3.10's answers for GET /, /status, /endpoints,
-- /config, entity reads (workspaces, pagination, tags) and refused writes.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local function json_of(res, status)
  return cjson.decode(assert.res_status(status, res))
end

describe("Admin API (DB-less)", function()
  local bp, client
  local svc, svc2, route1, upstream, target_old, target_new, cert, consumer, team_svc

  lazy_setup(function()
    bp = helpers.get_db_utils("off")
    svc = bp.services:insert { name = "svc-one", tags = { "red", "blue" } }
    svc2 = bp.services:insert { name = "svc-two", tags = { "blue" } }
    for i = 1, 5 do
      bp.services:insert { name = "bulk-" .. i, tags = { "bulk" } }
    end
    route1 = bp.routes:insert { name = "route-one", service = svc, paths = { "/one" } }
    bp.routes:insert { name = "route-two", service = svc2, paths = { "/two" } }
    upstream = bp.upstreams:insert { name = "up.test" }
    target_old = bp.targets:insert { upstream = upstream, target = "10.0.0.1:80" }
    target_new = bp.targets:insert { upstream = upstream, target = "10.0.0.2:80", weight = 10 }
    consumer = bp.consumers:insert { username = "alice", custom_id = "alice-1" }
    local ws = bp.workspaces:insert { name = "teamA" }
    team_svc = bp.services:insert({ name = "svc-one", tags = { "red" } }, { workspace = ws })
    bp.routes:insert({ name = "team-route", service = team_svc, paths = { "/team" } },
                     { workspace = ws })
    assert(helpers.start_kong { database = "off" })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  before_each(function()
    client = helpers.admin_client()
  end)

  after_each(function()
    if client then client:close() end
  end)

  describe("GET /", function()
    it("reports Kong's version, tollgate's beside it, and the node", function()
      local res = client:get("/")
      local json = json_of(res, 200)
      assert.equal("3.10.0", json.version)
      assert.is_string(json.tollgate_version)
      assert.equal("Welcome to kong", json.tagline)
      assert.equal("community", json.edition)
      assert.is_string(json.hostname)
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", json.node_id)
      assert.is_string(json.lua_version)
      assert.is_table(json.plugins.available_on_server)
      assert.is_table(json.plugins.enabled_in_cluster)
      assert.is_number(json.pids.master)
      assert.equal("off", json.configuration.database)
    end)

    it("hides secrets in the configuration", function()
      helpers.stop_kong()
      assert(helpers.start_kong { database = "off", pg_password = "hunter2" })
      client = helpers.admin_client()
      local json = json_of(client:get("/"), 200)
      assert.equal("******", json.configuration.pg_password)
      assert.not_matches("hunter2", cjson.encode(json), 1, true)
    end)

    it("sends Kong's Admin API headers", function()
      local res = client:get("/", { headers = { Origin = "http://example.test" } })
      assert.res_status(200, res)
      assert.equal("http://example.test", res.headers["access-control-allow-origin"])
      assert.equal("true", res.headers["access-control-allow-credentials"])
      assert.matches("^%d+$", res.headers["x-kong-admin-latency"])
      assert.matches("^tollgate/", res.headers["server"])
      assert.matches("application/json", res.headers["content-type"], 1, true)
      res = client:get("/services")
      assert.res_status(200, res)
      assert.equal("*", res.headers["access-control-allow-origin"])
    end)
  end)

  describe("GET /status", function()
    it("has the server counters and the configuration hash, no database", function()
      local json = json_of(client:get("/status"), 200)
      assert.matches("^%x+$", json.configuration_hash)
      assert.equal(32, #json.configuration_hash)
      assert.is_nil(json.database)
      for _, k in ipairs({ "connections_accepted", "connections_active", "connections_handled",
                           "connections_reading", "connections_writing",
                           "connections_waiting", "total_requests" }) do
        assert.is_number(json.server[k], k)
      end
      assert.is_table(json.memory.lua_shared_dicts)
      assert.matches(" MiB$", json.memory.workers_lua_vms[1].http_allocated_gc)
    end)

    it("formats memory in the unit asked for and refuses a bad one", function()
      local json = json_of(client:get("/status?unit=k&scale=3"), 200)
      assert.matches("^%d+%.%d%d%d KiB$", json.memory.workers_lua_vms[1].http_allocated_gc)
      json = json_of(client:get("/status?unit=x"), 400)
      assert.equal("invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')", json.message)
    end)
  end)

  describe("GET /endpoints", function()
    it("lists the routes with {param} placeholders, segment-sorted", function()
      local json = json_of(client:get("/endpoints"), 200)
      local set = {}
      for _, p in ipairs(json.data) do set[p] = true end
      assert.is_true(set["/services/{services}/routes"])
      assert.is_true(set["/routes/{routes}/service"])
      assert.is_true(set["/upstreams/{upstreams}/targets/{targets}"])
      assert.is_true(set["/config"])
      -- "/a" < "/a/z" < "/ab"
      local pos = {}
      for i, p in ipairs(json.data) do pos[p] = i end
      assert.is_true(pos["/routes/{routes}"] < pos["/routes/{routes}/service"])
    end)
  end)

  describe("entity reads", function()
    it("lists services of the default workspace, sorted by id", function()
      local json = json_of(client:get("/services"), 200)
      assert.equal(7, #json.data)
      for i = 2, #json.data do
        assert.is_true(json.data[i - 1].id < json.data[i].id)
      end
      assert.equal(cjson.null, json.next)
      assert.is_nil(json.offset)
      for _, s in ipairs(json.data) do
        assert.equal("0dc6f45b-8f8d-40d2-a504-473544ee190b", s.ws_id)
      end
    end)

    it("selects by id and by name", function()
      local by_id = json_of(client:get("/services/" .. svc.id), 200)
      local by_name = json_of(client:get("/services/svc-one"), 200)
      assert.equal(svc.id, by_id.id)
      assert.same(by_id, by_name)
      assert.equal(60000, by_name.connect_timeout)
      assert.equal(cjson.null, by_name.path)
    end)

    it("answers 404 Not found for an unknown entity or path", function()
      assert.same({ message = "Not found" }, json_of(client:get("/services/nope"), 404))
      assert.same({ message = "Not found" },
                  json_of(client:get("/services/" .. "00000000-0000-4000-8000-000000000000"), 404))
      assert.same({ message = "Not found" }, json_of(client:get("/no/such/path"), 404))
    end)

    it("follows foreign keys both ways", function()
      local json = json_of(client:get("/services/svc-one/routes"), 200)
      assert.equal(1, #json.data)
      assert.equal(route1.id, json.data[1].id)
      assert.same({ id = svc.id }, json.data[1].service)
      local s = json_of(client:get("/routes/route-one/service"), 200)
      assert.equal(svc.id, s.id)
      local r = json_of(client:get("/services/svc-one/routes/route-one"), 200)
      assert.equal(route1.id, r.id)
      -- a route of another service is not found under this one
      json_of(client:get("/services/svc-two/routes/route-one"), 404)
    end)

    it("ignores a trailing slash", function()
      assert.equal(7, #json_of(client:get("/services/"), 200).data)
    end)

    it("reads upstream targets newest first, by id or address", function()
      local json = json_of(client:get("/upstreams/up.test/targets"), 200)
      assert.equal(2, #json.data)
      local t = json_of(client:get("/upstreams/up.test/targets/10.0.0.2:80"), 200)
      assert.equal(target_new.id, t.id)
      assert.equal(10, t.weight)
      t = json_of(client:get("/upstreams/up.test/targets/" .. target_old.id), 200)
      assert.equal("10.0.0.1:80", t.target)
      json_of(client:get("/upstreams/up.test/targets/10.9.9.9:80"), 404)
      json_of(client:get("/targets"), 404)
      json_of(client:get("/targets/" .. target_old.id), 404)
    end)

    it("finds consumers by custom_id", function()
      local json = json_of(client:get("/consumers?custom_id=alice-1"), 200)
      assert.equal(consumer.id, json.data[1].id)
      assert.equal(cjson.null, json.next)
      json = json_of(client:get("/consumers?custom_id=nobody"), 200)
      assert.same({}, json.data)
      json = json_of(client:get("/consumers?custom_id="), 400)
      assert.equal("custom_id must be an unempty string", json.message)
    end)

    it("looks certificates up by SNI name", function()
      local json = json_of(client:get("/certificates/unknown.test"), 404)
      assert.equal("SNI not found", json.message)
    end)

    it("lists workspaces and reads one by name", function()
      local json = json_of(client:get("/workspaces"), 200)
      local names = {}
      for _, w in ipairs(json.data) do names[w.name] = w end
      assert.truthy(names.default)
      assert.truthy(names.teamA)
      assert.equal("0dc6f45b-8f8d-40d2-a504-473544ee190b", names.default.id)
      local w = json_of(client:get("/workspaces/teamA"), 200)
      assert.equal(names.teamA.id, w.id)
    end)
  end)

  describe("workspace prefixes", function()
    it("scopes reads to the workspace named first in the path", function()
      local ws = json_of(client:get("/workspaces/teamA"), 200)
      local json = json_of(client:get("/teamA/services"), 200)
      assert.equal(1, #json.data)
      assert.equal("svc-one", json.data[1].name)
      assert.equal(ws.id, json.data[1].ws_id)
      local same_name = json_of(client:get("/teamA/services/svc-one"), 200)
      assert.not_equal(svc.id, same_name.id)
      assert.equal(1, #json_of(client:get("/teamA/services/svc-one/routes"), 200).data)
      json_of(client:get("/teamA/services/svc-two"), 404)
      -- an id from another workspace is not found
      json_of(client:get("/teamA/services/" .. svc.id), 404)
    end)

    it("treats /default/... as the default workspace", function()
      assert.equal(7, #json_of(client:get("/default/services"), 200).data)
    end)

    it("answers 404 for an unknown workspace", function()
      json_of(client:get("/teamZ/services"), 404)
    end)
  end)

  describe("pagination", function()
    it("pages with size and an offset token, next as Kong formats it", function()
      local seen = {}
      local json = json_of(client:get("/services?size=3"), 200)
      assert.equal(3, #json.data)
      assert.is_string(json.offset)
      local esc = json.offset:gsub("[^%w%-%._~]", function(c)
        return string.format("%%%02X", c:byte())
      end)
      assert.equal("/services?offset=" .. esc .. "&size=3", json.next)
      for _, s in ipairs(json.data) do seen[s.id] = true end
      local pages = 1
      while json.next ~= cjson.null do
        json = json_of(client:get(json.next), 200)
        pages = pages + 1
        for _, s in ipairs(json.data) do
          assert.is_nil(seen[s.id])
          seen[s.id] = true
        end
      end
      assert.equal(3, pages)
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.equal(7, n)
    end)

    it("keeps tags in the next link", function()
      local json = json_of(client:get("/services?tags=bulk&size=2"), 200)
      assert.equal(2, #json.data)
      assert.matches("^/services%?offset=.+&tags=bulk&size=2$", json.next)
    end)

    it("formats nested next links with the parent key as given", function()
      local json = json_of(client:get("/upstreams/up.test/targets?size=1"), 200)
      assert.equal(1, #json.data)
      assert.equal("1", json.offset)
      assert.equal("/upstreams/up.test/targets?offset=1", json.next)
    end)

    it("refuses a bad size or offset with Kong's errors", function()
      assert.same({ code = 9, name = "invalid size", message = "size must be a number" },
                  json_of(client:get("/services?size=abc"), 400))
      assert.same({ code = 9, name = "invalid size",
                    message = "size must be an integer between 1 and 1000" },
                  json_of(client:get("/services?size=1001"), 400))
      assert.same({ code = 9, name = "invalid size",
                    message = "size must be an integer between 1 and 1000" },
                  json_of(client:get("/services?size=0"), 400))
      assert.same({ code = 7, name = "invalid offset",
                    message = "'!!' is not a valid offset: bad base64 encoding" },
                  json_of(client:get("/services?offset=!!"), 400))
    end)
  end)

  describe("tags", function()
    it("filters with a,b (and) and a/b (or)", function()
      local json = json_of(client:get("/services?tags=blue"), 200)
      assert.equal(2, #json.data)
      json = json_of(client:get("/services?tags=red,blue"), 200)
      assert.equal(1, #json.data)
      assert.equal("svc-one", json.data[1].name)
      json = json_of(client:get("/services?tags=red/bulk"), 200)
      assert.equal(6, #json.data)
    end)

    it("refuses mixed separators and too many tags", function()
      local json = json_of(client:get("/services?tags=a,b/c"), 400)
      assert.equal(11, json.code)
      assert.equal("invalid options", json.name)
      assert.equal("invalid option (tags: invalid filter syntax)", json.message)
      assert.same({ tags = "invalid filter syntax" }, json.options)
      json = json_of(client:get("/services?tags=a,b,c,d,e,f"), 400)
      assert.equal("invalid option (tags: cannot query more than 5 tags)", json.message)
    end)

    it("lists tags with the entities carrying them", function()
      local json = json_of(client:get("/tags/red"), 200)
      assert.equal(1, #json.data)
      assert.same({ tag = "red", entity_name = "services", entity_id = svc.id }, json.data[1])
      json = json_of(client:get("/tags?size=2"), 200)
      assert.equal(2, #json.data)
      assert.is_string(json.offset)
    end)
  end)

  describe("writes without a database", function()
    local function refused(method, path, message)
      local res = client:send { method = method, path = path, body = {},
                                headers = { ["Content-Type"] = "application/json" } }
      local json = json_of(res, 405)
      assert.same({ code = 12, name = "operation unsupported", message = message }, json)
    end

    it("refuses create, update, upsert and delete with Kong's messages", function()
      refused("POST", "/services", "cannot create 'services' entities when not using a database")
      refused("PATCH", "/services/" .. svc.id,
              "cannot update 'services' entities when not using a database")
      refused("PATCH", "/services/svc-one",
              "cannot update 'services' entities by 'name' when not using a database")
      refused("PUT", "/services/svc-one",
              "cannot create or update 'services' entities by 'name' when not using a database")
      refused("DELETE", "/services/" .. svc.id,
              "cannot remove 'services' entities when not using a database")
      refused("POST", "/services/svc-one/routes",
              "cannot create 'routes' entities when not using a database")
      refused("POST", "/consumers", "cannot create 'consumers' entities when not using a database")
      refused("DELETE", "/upstreams/up.test/targets/10.0.0.1:80",
              "cannot remove 'targets' entities when not using a database")
    end)

    it("answers 404 before refusing when the parent does not exist", function()
      local res = client:post("/services/nope/routes", { body = {},
                              headers = { ["Content-Type"] = "application/json" } })
      assert.same({ message = "Not found" }, json_of(res, 404))
    end)

    it("answers 405 Method not allowed for a method a path lacks", function()
      local res = client:delete("/status")
      assert.same({ message = "Method not allowed" }, json_of(res, 405))
      res = client:delete("/routes/route-one/service")
      assert.same({ message = "Method not allowed" }, json_of(res, 405))
    end)

    it("serves the target health overrides (spec 41 covers their effect)", function()
      local res = client:put("/upstreams/up.test/targets/10.0.0.1:80/healthy")
      assert.res_status(204, res)
      res = client:put("/upstreams/up.test/targets/10.9.9.9:80/healthy")
      assert.res_status(404, res)
    end)

    it("answers OPTIONS with the methods of the path", function()
      local res = client:options("/services/svc-one")
      assert.res_status(204, res)
      assert.equal("DELETE, GET, HEAD, OPTIONS, PATCH, PUT", res.headers["allow"])
      assert.equal("DELETE, GET, HEAD, OPTIONS, PATCH, PUT",
                   res.headers["access-control-allow-methods"])
    end)

    it("refuses unsupported body types with 415 and bad JSON with 400", function()
      local res = client:post("/config", { body = "x",
                              headers = { ["Content-Type"] = "text/plain" } })
      assert.res_status(415, res)
      res = client:post("/config", { body = "{bad",
                        headers = { ["Content-Type"] = "application/json" } })
      assert.same({ message = "Cannot parse JSON body" }, json_of(res, 400))
    end)
  end)

  describe("/config", function()
    local YAML = table.concat({
      '_format_version: "3.0"',
      "services:",
      "- name: posted",
      "  url: " .. helpers.mock_upstream_url,
      "  routes:",
      "  - name: posted-route",
      "    paths: [/posted]",
      "",
    }, "\n")

    it("exports the running config as YAML", function()
      local json = json_of(client:get("/config"), 200)
      assert.matches('_format_version: "3.0"', json.config, 1, true)
      assert.matches("_transform: false", json.config, 1, true)
      assert.matches("svc-one", json.config, 1, true)
    end)

    it("refuses an invalid config with Kong's error and keeps the running one", function()
      local res = client:post("/config", {
        body = { _format_version = "3.0",
                 services = { { name = "bad", host = "example.test", port = "nope" } } },
        headers = { ["Content-Type"] = "application/json" },
      })
      local json = json_of(res, 400)
      assert.equal(14, json.code)
      assert.equal("invalid declarative configuration", json.name)
      assert.same({ services = { { port = "expected an integer" } } }, json.fields)
      assert.is_nil(json.flattened_errors)
      assert.equal(7, #json_of(client:get("/services"), 200).data)
    end)

    it("adds flattened_errors with flatten_errors=1", function()
      local res = client:post("/config?flatten_errors=1", {
        body = { _format_version = "3.0",
                 services = { { name = "bad", host = "example.test", port = "nope" } } },
        headers = { ["Content-Type"] = "application/json" },
      })
      local json = json_of(res, 400)
      assert.equal(1, #json.flattened_errors)
      assert.equal("service", json.flattened_errors[1].entity_type)
      assert.equal("bad", json.flattened_errors[1].entity_name)
    end)

    it("answers 400 without a config", function()
      local res = client:post("/config", { body = "",
                              headers = { ["Content-Type"] = "application/json" } })
      assert.same({ message = "expected a declarative configuration" }, json_of(res, 400))
      -- a body without _format_version is a declarative error, as in Kong
      res = client:post("/config", { body = {},
                        headers = { ["Content-Type"] = "application/json" } })
      local json = json_of(res, 400)
      assert.equal(14, json.code)
      assert.same({ _format_version = "required field missing" }, json.fields)
    end)

    it("applies a posted config (201) and 304 with check_hash when unchanged", function()
      local res = client:post("/config", { body = { config = YAML },
                              headers = { ["Content-Type"] = "application/json" } })
      local json = json_of(res, 201)
      assert.is_table(json.services)
      local id, row = next(json.services)
      assert.equal("posted", row.name)
      assert.equal(id, row.id)
      assert.is_nil(row.ws_id)
      assert.is_nil(json.workspaces)
      assert.is_table(json.routes)

      local list = json_of(client:get("/services"), 200)
      assert.equal(1, #list.data)
      assert.equal("posted", list.data[1].name)
      json_of(client:get("/teamZ/services"), 404)

      res = client:post("/config?check_hash=1", { body = YAML,
                        headers = { ["Content-Type"] = "text/yaml" } })
      assert.res_status(304, res)

      -- the proxy serves the posted route
      helpers.wait_until(function()
        local p = helpers.proxy_client()
        local r = p:get("/posted")
        p:close()
        return r and r.status == 200
      end, 10)
    end)

    it("takes a form-encoded config= too", function()
      local res = client:post("/config", {
        body = { config = YAML:gsub("posted%-route", "form-route") },
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      })
      assert.res_status(201, res)
      json_of(client:get("/routes/form-route"), 200)
    end)
  end)
end)
