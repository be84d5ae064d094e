-- The plugin host: Kong-written plugins (spec/fixtures/custom_plugins) run in
-- their phases, in Kong's order and precedence, through the real binary.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local function get(path, headers)
  local client = helpers.proxy_client()
  local res = assert(client:get(path, { headers = headers }))
  local body = res:read_body()
  client:close()
  return res, body
end

describe("plugin host", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "tg-trace", "tg-exit", "tg-error" })
    local s = bp.services:insert { name = "s1" }
    local s2 = bp.services:insert { name = "s2" }
    local trace = bp.routes:insert { service = s, paths = { "/trace" } }
    local exit = bp.routes:insert { service = s, paths = { "/exit" } }
    local err = bp.routes:insert { service = s, paths = { "/err" } }
    bp.routes:insert { service = s, paths = { "/plain" } }
    local by_svc = bp.routes:insert { service = s2, paths = { "/svc" } }
    local both = bp.routes:insert { service = s2, paths = { "/both" } }
    bp.plugins:insert { name = "tg-trace", route = trace, config = { header_value = "route" } }
    bp.plugins:insert { name = "tg-trace", route = exit, config = { header_value = "route" } }
    bp.plugins:insert { name = "tg-exit", route = exit, config = {} }
    bp.plugins:insert { name = "tg-error", route = err, config = { phase = "access" } }
    bp.plugins:insert { name = "tg-trace", service = s2, config = { header_value = "service" } }
    bp.plugins:insert { name = "tg-trace", route = both, config = { header_value = "route" } }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,tg-trace,tg-exit,tg-error",
      lua_package_path = PLUGINS_PATH,
    })
    assert(by_svc)
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("runs access, header_filter and log of a route's plugin", function()
    local res, body = get("/trace/anything")
    assert.equal(200, res.status)
    local json = cjson.decode(body)
    assert.equal("access", json.headers["x-trace"])
    assert.equal("route", json.headers["x-trace-config"])
    assert.equal("access,header_filter", res.headers["x-phases"])
    assert.equal("yes", res.headers["x-set-in-access"])
    assert.equal("plugin-ctx", res.headers["x-plugin-ctx"])
    assert.equal("200", res.headers["x-upstream-status"])
    assert.logfile().has.line("tg-trace log phase: access,header_filter,log status 200", true, 10)
  end)

  it("leaves a route without plugins alone", function()
    local res, body = get("/plain/anything")
    assert.equal(200, res.status)
    assert.is_nil(cjson.decode(body).headers["x-trace"])
    assert.is_nil(res.headers["x-phases"])
  end)

  it("ends the handler at kong.response.exit, skips the upstream, still runs the filters", function()
    assert(helpers.mock_upstream_reset())
    local res, body = get("/exit/anything")
    assert.equal(403, res.status)
    assert.same({ message = "stopped by tg-exit" }, cjson.decode(body))
    assert.equal("1", res.headers["x-exit"])
    assert.equal("ran", res.headers["x-exit-header-filter"])
    assert.matches("application/json", res.headers["content-type"], 1, true)
    -- tg-trace (PRIORITY 1000) ran its access before tg-exit (900)
    assert.equal("access,header_filter", res.headers["x-phases"])
    assert.equal(0, helpers.mock_upstream_count())
    assert.logfile().has.no.line("code after kong.response.exit ran", true)
  end)

  it("answers 500 with Kong's JSON body when a plugin raises in access, and serves the next request",
     function()
    local res, body = get("/err/anything", { Accept = "text/html" })
    assert.equal(500, res.status)
    assert.same({ message = "An unexpected error occurred" }, cjson.decode(body))
    assert.logfile().has.line("tg-error raised in access", true, 10)
    local res2 = get("/trace/anything")
    assert.equal(200, res2.status)
  end)

  it("applies a service's plugin to its routes, and a route's config wins over it", function()
    local _, body = get("/svc/anything")
    assert.equal("service", cjson.decode(body).headers["x-trace-config"])
    local _, body2 = get("/both/anything")
    assert.equal("route", cjson.decode(body2).headers["x-trace-config"])
  end)
end)

describe("plugin host, global plugins", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "tg-trace", "tg-error" })
    local s = bp.services:insert()
    bp.routes:insert { service = s, paths = { "/g" } }
    bp.plugins:insert { name = "tg-trace", config = { header_value = "global" } }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,tg-trace,tg-error",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("runs a global plugin's rewrite before routing, then its access", function()
    local res, body = get("/g/anything")
    assert.equal(200, res.status)
    assert.equal("rewrite,access", cjson.decode(body).headers["x-trace"])
    assert.equal("global", cjson.decode(body).headers["x-trace-config"])
  end)

  it("runs a global plugin's log for a request that matched no route", function()
    local res = get("/nothing")
    assert.equal(404, res.status)
    assert.logfile().has.line("tg-trace log phase: rewrite,log status 404", true, 10)
  end)
end)

describe("plugin host, loading", function()
  local cases = {
    { "tg-bad-priority", 'Plugin "tg-bad-priority" cannot be loaded because its PRIORITY field '
                         .. 'is not a valid integer number, got: "10.5".' },
    { "tg-bad-version", 'Plugin "tg-bad-version" cannot be loaded because its VERSION field does '
                        .. 'not follow the "x.y.z" format, got: "1.2.3.4".' },
    { "tg-response-and-filter", 'Plugin "tg-response-and-filter" can\'t be loaded because it '
                                .. "implements both `response` and `header_filter` or "
                                .. "`body_filter` methods." },
    { "tg-not-there", "tg-not-there plugin is enabled but not installed" },
  }
  for _, c in ipairs(cases) do
    it("refuses to start with " .. c[1] .. ", saying why", function()
      helpers.get_db_utils("off")
      local ok, err = helpers.start_kong {
        database = "off",
        plugins = "bundled," .. c[1],
        lua_package_path = PLUGINS_PATH,
      }
      helpers.stop_kong()
      assert.is_nil(ok)
      assert.matches(c[2], err, 1, true)
    end)
  end

  it("refuses a config that uses a plugin not enabled, with Kong's message", function()
    local f = os.tmpname() .. ".yaml"
    local fh = assert(io.open(f, "w"))
    fh:write('_format_version: "3.0"\nservices:\n- name: s\n  url: http://127.0.0.1:9\n'
             .. '  plugins:\n  - name: tg-trace\n    config: { header_value: "x" }\n')
    fh:close()
    local ok, err, out = helpers.kong_exec("config parse " .. f)
    os.remove(f)
    assert.is_false(ok)
    assert.matches("plugin 'tg-trace' not enabled; add it to the 'plugins' configuration property",
                   (err or "") .. (out or ""), 1, true)
  end)
end)
