-- Plugin loading through the real binary: Kong-written custom plugins found
-- through lua_package_path, start refused for plugins Kong refuses (with
-- Kong's messages), plugin configs validated by their schema at
-- `config parse` and at start.
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

local function write_tmp(text)
  local f = os.tmpname() .. ".yaml"
  local fh = assert(io.open(f, "w"))
  fh:write(text)
  fh:close()
  return f
end

-- `tollgate config parse FILE` with the given plugins enabled: ok, output
local function config_parse(text, plugins)
  local f = write_tmp(text)
  local ok, err, out = helpers.kong_exec("config parse " .. f, {
    plugins = plugins, lua_package_path = PLUGINS_PATH,
  })
  os.remove(f)
  return ok, (err or "") .. (out or "")
end

describe("plugin loading", function()
  describe("custom plugins written for Kong", function()
    lazy_setup(function()
      local bp = helpers.get_db_utils("off", nil, { "my-plugin", "reads-module-name",
                                                    "defines-globals" })
      local s = bp.services:insert { name = "s1" }
      local r1 = bp.routes:insert { service = s, paths = { "/mine" } }
      local r2 = bp.routes:insert { service = s, paths = { "/defaults" } }
      local r3 = bp.routes:insert { service = s, paths = { "/modname" } }
      local r4 = bp.routes:insert { service = s, paths = { "/globals" } }
      bp.plugins:insert { name = "my-plugin", route = r1,
                          config = { greeting = "howdy", header_name = "X-Greeting",
                                     from_header = "X-Ask" } }
      bp.plugins:insert { name = "my-plugin", route = r2 }
      bp.plugins:insert { name = "reads-module-name", route = r3 }
      bp.plugins:insert { name = "defines-globals", route = r4 }
      assert(helpers.start_kong {
        database = "off",
        plugins = "bundled,my-plugin,reads-module-name,defines-globals",
        lua_package_path = PLUGINS_PATH,
        nginx_worker_processes = 1,
      })
    end)

    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("runs a handler + schema plugin with its configuration", function()
      local res = get("/mine/x")
      assert.equal(200, res.status)
      assert.equal("howdy", res.headers["x-greeting"])
      res = get("/mine/x", { ["X-Ask"] = "from the request" })
      assert.equal("from the request", res.headers["x-greeting"])
    end)

    it("fills the schema's defaults", function()
      local res = get("/defaults/x")
      assert.equal(200, res.status)
      assert.equal("hello", res.headers["x-my-plugin"])
    end)

    it("loads a plugin whose handler and schema read their module name", function()
      local res = get("/modname/x")
      assert.equal(200, res.status)
      assert.equal("kong.plugins.reads-module-name.handler", res.headers["x-module-name"])
      assert.equal("reads-module-name", res.headers["x-schema-name"])
      -- the schema's default, derived from its module name
      assert.equal("reads-module-name", res.headers["x-label"])
    end)

    it("keeps globals defined at load time across requests", function()
      local first = get("/globals/x").headers["x-global-count"]
      local second = get("/globals/x").headers["x-global-count"]
      local n1 = tonumber(first:match("^seen%-(%d+)$"))
      local n2 = tonumber(second:match("^seen%-(%d+)$"))
      assert.truthy(n1, first)
      assert.equal(n1 + 1, n2)
    end)

    it("leaves other routes alone", function()
      local res, body = get("/defaults/x")
      assert.is_nil(res.headers["x-global-count"])
      assert.is_nil(res.headers["x-module-name"])
      -- strip_path is true by default: the upstream sees the rest of the path
      assert.equal("/x", cjson.decode(body).path)
    end)
  end)

  describe("refused at start", function()
    local cases = {
      { "bad-priority", 'Plugin "bad-priority" cannot be loaded because its PRIORITY field '
                        .. 'is not a valid integer number, got: "10.5".' },
      { "bad-version", 'Plugin "bad-version" cannot be loaded because its VERSION field does '
                       .. 'not follow the "x.y.z" format, got: "1.2.3.4".' },
      { "response-and-filter", 'Plugin "response-and-filter" can\'t be loaded because it '
                               .. "implements both `response` and `header_filter` or "
                               .. "`body_filter` methods." },
      { "not-installed-anywhere", "not-installed-anywhere plugin is enabled but not installed" },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. ", with Kong's message", function()
        helpers.get_db_utils("off")
        local ok, err = helpers.start_kong {
          database = "off",
          plugins = "bundled,my-plugin," .. c[1],
          lua_package_path = PLUGINS_PATH,
        }
        helpers.stop_kong()
        assert.is_nil(ok)
        assert.matches("error loading plugin schemas: on plugin '" .. c[1] .. "': ", err, 1, true)
        assert.matches(c[2], err, 1, true)
      end)
    end

    it("a declarative config whose plugin config violates the schema", function()
      local bp = helpers.get_db_utils("off", nil, { "my-plugin" })
      local s = bp.services:insert { name = "s1" }
      bp.plugins:insert { name = "my-plugin", service = s, config = { times = 0 } }
      local ok, err = helpers.start_kong {
        database = "off",
        plugins = "bundled,my-plugin",
        lua_package_path = PLUGINS_PATH,
      }
      helpers.stop_kong()
      assert.is_nil(ok)
      assert.matches("in 'times': value should be between 1 and 10", err, 1, true)
    end)
  end)

  describe("tollgate config parse", function()
    it("refuses a plugin that is not enabled, with Kong's message", function()
      local ok, out = config_parse('_format_version: "3.0"\nplugins:\n- name: my-plugin\n',
                                   "bundled,defines-globals")
      assert.is_false(ok)
      assert.matches("in 'name': plugin 'my-plugin' not enabled; add it to the 'plugins' "
                     .. "configuration property", out, 1, true)
    end)

    it("refuses a config violating the plugin's schema with Kong's field errors", function()
      local ok, out = config_parse([[
_format_version: "3.0"
consumers:
- username: c
  plugins:
  - name: my-plugin
services:
- name: s
  url: http://127.0.0.1:9
  plugins:
  - name: my-plugin
    config: { times: 11, mode: loud, nope: 1, header_name: "bad header" }
    protocols: [tcp]
]], "bundled,my-plugin")
      assert.is_false(ok)
      assert.matches("Failed parsing:", out, 1, true)
      for _, line in ipairs({
        "in 'mode': expected one of: plain, shout",
        "in 'nope': unknown field",
        "in 'times': value should be between 1 and 10",
        "in 'header_name': bad header name 'bad header', allowed characters are A-Z, a-z, 0-9, "
          .. "'_', and '-'",
        "expected one of: grpc, grpcs, http, https",
        "in 'consumer': value must be null",
      }) do
        assert.matches(line, out, 1, true)
      end
    end)

    it("runs the schema's entity checks", function()
      local ok, out = config_parse('_format_version: "3.0"\nplugins:\n- name: my-plugin\n'
                                   .. '  config: { mode: shout }\n', "bundled,my-plugin")
      assert.is_false(ok)
      assert.matches("failed conditional validation given value of field 'mode'", out, 1, true)
    end)

    it("accepts a valid config, the plugin found through lua_package_path", function()
      local ok, out = config_parse('_format_version: "3.0"\nplugins:\n- name: my-plugin\n'
                                   .. '  config: { mode: shout, times: 3 }\n'
                                   .. '- name: reads-module-name\n',
                                   "bundled,my-plugin,reads-module-name")
      assert.is_true(ok, out)
    end)

    it("refuses an enabled plugin that Kong refuses to load, as Kong's config parse", function()
      -- Kong's `config parse` loads every enabled plugin (load_plugin_schemas)
      local ok, out = config_parse('_format_version: "3.0"\nplugins:\n- name: my-plugin\n',
                                   "bundled,my-plugin,bad-version")
      assert.is_false(ok)
      assert.matches("error loading plugin schemas: on plugin 'bad-version': Plugin \"bad-version\" "
                     .. "cannot be loaded because its VERSION field", out, 1, true)
    end)
  end)
end)
