-- tollgate.plugins: module resolution, Kong's load rules and messages,
-- ordering, and plugin config validation through the plugin's schema.
local plugins = require "tollgate.plugins"
local declarative = require "tollgate.declarative"

local ROOT = plugins.ROOT
local CUSTOM = ROOT .. "/spec/fixtures/custom_plugins"

-- custom plugins through package.path, as conf `lua_package_path` adds them
package.path = package.path .. ";" .. CUSTOM .. "/?.lua"

-- the runloop creates the PDK before loading; handlers only need `kong` to exist
_G.kong = _G.kong or {}

local function tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local d = p:read("*l")
  p:close()
  return d
end

local function write(path, text)
  os.execute("mkdir -p '" .. path:match("^(.*)/[^/]+$") .. "'")
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Points plugins.DIR at a fresh directory around each test of the enclosing
-- describe; returns a table whose `path` is that directory.
local function bundled_dir_per_test()
  local state = {}
  before_each(function()
    state.saved = plugins.DIR
    state.path = tmpdir()
    plugins.DIR = state.path
  end)
  after_each(function()
    plugins.DIR = state.saved
    os.execute("rm -rf '" .. state.path .. "'")
  end)
  return state
end

local function reason(name, err)
  local prefix = "error loading plugin schemas: on plugin '" .. name .. "': "
  assert.equal(prefix, err:sub(1, #prefix))
  return err:sub(#prefix + 1)
end

describe("tollgate.plugins", function()
  describe("root", function()
    it("is the directory above core/lua", function()
      local f = io.open(ROOT .. "/core/lua/tollgate/plugins/init.lua")
      assert.truthy(f)
      f:close()
      assert.equal(ROOT .. "/plugins", plugins.DIR)
    end)
  end)

  describe("expand", function()
    local saved
    before_each(function() saved = plugins.DIR end)
    after_each(function() plugins.DIR = saved end)

    it("expands bundled to the plugin dirs with a handler", function()
      local d = tmpdir()
      write(d .. "/zeta/handler.lua", "return {}")
      write(d .. "/alpha/handler.lua", "return {}")
      write(d .. "/nohandler/schema.lua", "return {}")
      plugins.DIR = d
      assert.same({ "alpha", "zeta" }, plugins.bundled())
      assert.same({ "alpha", "zeta" }, plugins.BUNDLED)
      assert.same({ "alpha", "zeta", "mine" }, plugins.expand({ "bundled", "mine" }))
      assert.same({ "mine", "alpha", "zeta" }, plugins.expand({ "mine", "bundled", "zeta" }))
      os.execute("rm -rf '" .. d .. "'")
    end)

    it("treats a leading off as none, like Kong's conf loader", function()
      assert.same({}, plugins.expand({ "off" }))
      assert.same({}, plugins.expand({ "off", "a" }))
      assert.same({ "a", "b" }, plugins.expand({ "a", "off", "b" }))
    end)

    it("accepts a comma-separated string, trims names, drops duplicates", function()
      plugins.DIR = "/nonexistent-dir"
      assert.same({ "a", "b" }, plugins.expand(" a , b,a,bundled"))
      assert.same({}, plugins.expand(nil))
    end)
  end)

  describe("module resolution", function()
    local d = bundled_dir_per_test()

    it("finds bundled plugins under <root>/plugins as kong.plugins and tollgate.plugins", function()
      write(d.path .. "/tg-bundled-x/handler.lua", "return { PRIORITY = 5, VERSION = '1.0.0', me = ... }")
      write(d.path .. "/tg-bundled-x/util/deep.lua", "return 'deep'")
      local h = require "kong.plugins.tg-bundled-x.handler"
      assert.equal("kong.plugins.tg-bundled-x.handler", h.me)
      -- one instance under both names
      assert.equal(h, require "tollgate.plugins.tg-bundled-x.handler")
      assert.equal("deep", require "tollgate.plugins.tg-bundled-x.util.deep")
    end)

    it("puts bundled plugins before package.path", function()
      -- my-plugin exists on package.path; a bundled one of the same name wins
      write(d.path .. "/reads-module-name/handler.lua", "return { bundled = true }")
      package.loaded["kong.plugins.reads-module-name.handler"] = nil
      local h = require "kong.plugins.reads-module-name.handler"
      assert.is_true(h.bundled)
      package.loaded["kong.plugins.reads-module-name.handler"] = nil
    end)

    it("finds custom plugins through package.path under both names", function()
      local h = require "kong.plugins.my-plugin.handler"
      assert.equal(1000, h.PRIORITY)
      assert.equal(h, require "tollgate.plugins.my-plugin.handler")
      assert.equal(require "kong.plugins.my-plugin.schema",
                   require "tollgate.plugins.my-plugin.schema")
    end)

    it("fails require of an unknown plugin module naming it", function()
      local ok, err = pcall(require, "tollgate.plugins.no-such-plugin.handler")
      assert.is_false(ok)
      assert.truthy(err:find("module 'tollgate.plugins.no-such-plugin.handler' not found", 1, true))
    end)
  end)

  describe("load", function()
    it("loads handlers and schemas, sorted by PRIORITY then name descending", function()
      local loaded = assert(plugins.load({ "reads-module-name", "my-plugin", "defines-globals" }))
      local names = {}
      for i, p in ipairs(loaded.sorted) do names[i] = p.name end
      assert.same({ "my-plugin", "reads-module-name", "defines-globals" }, names)
      local p = loaded["my-plugin"]
      assert.equal(p, loaded.by_name["my-plugin"])
      assert.equal(1000, p.priority)
      assert.equal("3.10.0", p.version)
      assert.equal("my-plugin", p.schema.name)
      assert.is_true(p.handler.no_consumer)
      assert.is_nil(p.handler.no_route)
    end)

    it("lets a schema and a handler read their own module name", function()
      local loaded = assert(plugins.load({ "reads-module-name" }))
      assert.equal("reads-module-name", loaded["reads-module-name"].schema.name)
    end)

    it("runs a handler's main chunk once, globals included", function()
      assert(plugins.load({ "defines-globals" }))
      assert.equal(0, DEFINES_GLOBALS_COUNTER) -- luacheck: ignore
      assert.equal("seen-1", defines_globals_next()) -- luacheck: ignore
      assert(plugins.load({ "defines-globals" }))
      assert.equal("seen-2", defines_globals_next()) -- luacheck: ignore
    end)

    it("refuses a fractional PRIORITY with Kong's message", function()
      local loaded, err = plugins.load({ "my-plugin", "bad-priority" })
      assert.is_nil(loaded)
      assert.equal('Plugin "bad-priority" cannot be loaded because its PRIORITY field is not '
                   .. 'a valid integer number, got: "10.5".', reason("bad-priority", err))
    end)

    it("refuses a four-part VERSION with Kong's message", function()
      local _, err = plugins.load({ "bad-version" })
      assert.equal('Plugin "bad-version" cannot be loaded because its VERSION field does not '
                   .. 'follow the "x.y.z" format, got: "1.2.3.4".', reason("bad-version", err))
    end)

    it("refuses response together with body_filter with Kong's message", function()
      local _, err = plugins.load({ "response-and-filter" })
      assert.equal('Plugin "response-and-filter" can\'t be loaded because it implements both '
                   .. '`response` and `header_filter` or `body_filter` methods.',
                   reason("response-and-filter", err))
    end)

    it("refuses a plugin that is not installed with Kong's message", function()
      local _, err = plugins.load({ "not-there" })
      local r = reason("not-there", err)
      assert.equal("not-there plugin is enabled but not installed;\n",
                   r:sub(1, #"not-there plugin is enabled but not installed;\n"))
      assert.truthy(r:find("module 'kong.plugins.not-there.handler' not found", 1, true))
    end)

    it("reports every failing plugin, joined as Kong does", function()
      local _, err = plugins.load({ "bad-priority", "bad-version" })
      assert.truthy(err:find("on plugin 'bad%-priority': .*; on plugin 'bad%-version': "))
    end)

    describe("PRIORITY and VERSION rules", function()
      local d = bundled_dir_per_test()

      local n = 0
      local function try(priority, version, extra)
        n = n + 1
        local name = "tg-rule-" .. n
        write(d.path .. "/" .. name .. "/handler.lua",
              "return { PRIORITY = " .. priority .. ", VERSION = " .. version .. (extra or "") .. " }")
        write(d.path .. "/" .. name .. "/schema.lua",
              "return { name = '" .. name .. "', fields = { { config = { type = 'record', fields = {} } } } }")
        local loaded, err = plugins.load({ name })
        return loaded and loaded[name], err
      end

      it("accepts negative and zero priorities, one to three version parts", function()
        assert.equal(-5, (assert(try("-5", "'1'"))).priority)
        assert.equal("1.0", (assert(try("0", "'1.0'"))).version)
        assert.equal("1.2.3", (assert(try("2", "'1.2.3'"))).version)
      end)

      it("refuses nil, NaN, infinities and strings as PRIORITY", function()
        for _, bad in ipairs({ { "nil", "nil" }, { "0/0", "[-]?nan" }, { "math.huge", "inf" },
                               { "-math.huge", "%-inf" }, { "'10'", "10" } }) do
          local p, err = try(bad[1], "'1.0.0'")
          assert.is_nil(p)
          assert.truthy(err:find('PRIORITY field is not a valid integer number, got: "'
                                 .. bad[2] .. '"%.$'), err)
        end
      end)

      it("refuses non-string and malformed VERSIONs", function()
        for _, bad in ipairs({ { "1", "1" }, { "nil", "nil" }, { "'a.b'", "a.b" },
                               { "'1..2'", "1..2" }, { "''", "" } }) do
          local p, err = try("1", bad[1])
          assert.is_nil(p)
          assert.truthy(err:find('VERSION field does not follow the "x.y.z" format, got: "'
                                 .. bad[2]:gsub("%.", "%%.") .. '"%.$'), err)
        end
      end)

      it("accepts response alone, and filters without response", function()
        assert(try("1", "'1.0.0'", ", response = function() end"))
        assert(try("1", "'1.0.0'", ", header_filter = function() end, body_filter = function() end"))
        local p, err = try("1", "'1.0.0'", ", response = function() end, header_filter = function() end")
        assert.is_nil(p)
        assert.truthy(err:find("implements both `response`", 1, true))
      end)

      it("refuses a plugin without a schema with Kong's message", function()
        write(d.path .. "/tg-noschema/handler.lua", "return { PRIORITY = 1, VERSION = '1.0' }")
        local _, err = plugins.load({ "tg-noschema" })
        assert.equal("no configuration schema found for plugin: tg-noschema",
                     reason("tg-noschema", err))
      end)

      it("reports a handler whose main chunk fails with its own error", function()
        write(d.path .. "/tg-boom/handler.lua", "error('boom at load')")
        local _, err = plugins.load({ "tg-boom" })
        assert.truthy(err:find("boom at load", 1, true))
        assert.falsy(err:find("not installed", 1, true))
      end)
    end)
  end)

  describe("sort", function()
    it("orders PRIORITY descending, then name descending, zero priorities too", function()
      local list = plugins.sort({
        { name = "a", priority = 0 }, { name = "c", priority = 0 }, { name = "b", priority = 0 },
        { name = "x", priority = 10 }, { name = "y", priority = 10 }, { name = "n", priority = -1 },
        { name = "h", handler = { PRIORITY = 20 } },
      })
      local names = {}
      for i, p in ipairs(list) do names[i] = p.name end
      assert.same({ "h", "y", "x", "c", "b", "a", "n" }, names)
    end)
  end)

  describe("validate_config", function()
    it("fills defaults", function()
      local config = assert(plugins.validate_config("my-plugin", { greeting = "hi" }))
      assert.same({ header_name = "X-My-Plugin", greeting = "hi", from_header = ngx and ngx.null
                    or require("tollgate.schema").null, times = 1, mode = "plain", tags_out = {} },
                  config)
    end)

    it("gives Kong's field errors", function()
      local config, err_t = plugins.validate_config("my-plugin",
                                                    { times = 0, mode = "loud", greeting = "" })
      assert.is_nil(config)
      assert.same({ config = { times = "value should be between 1 and 10",
                               mode = "expected one of: plain, shout",
                               greeting = "length must be at least 1" } }, err_t)
    end)

    it("runs the config's entity checks", function()
      local _, err_t = plugins.validate_config("my-plugin", { mode = "shout", times = 1 })
      assert.same({ config = { ["@entity"] = { "failed conditional validation given value of field 'mode'" },
                               times = "value must be greater than 1" } }, err_t)
      assert(plugins.validate_config("my-plugin", { mode = "shout", times = 2 }))
    end)

    it("refuses a consumer for a no_consumer plugin", function()
      local _, err_t = plugins.validate_config("my-plugin", {}, { consumer = { id = "c0d6e08c-52b5-4d2c-a1b3-5d2a3b4f6a7e" } })
      assert.same({ consumer = "value must be null" }, err_t)
    end)

    it("refuses unknown config fields and a protocol outside the schema's", function()
      local _, err_t = plugins.validate_config("my-plugin", { nope = 1 }, { protocols = { "tcp" } })
      assert.same({ config = { nope = "unknown field" },
                    protocols = { "expected one of: grpc, grpcs, http, https" } }, err_t)
    end)

    it("names a plugin without a schema", function()
      local _, err_t = plugins.validate_config("not-there", {})
      assert.same({ name = "no configuration schema found for plugin: not-there" }, err_t)
    end)
  end)

  describe("declarative loading", function()
    local function load(text, names)
      return declarative.load_string(text, { plugins = names })
    end

    it("validates a custom plugin's config with its schema", function()
      local c = assert(load('{"_format_version":"3.0","plugins":[{"name":"my-plugin",'
                            .. '"config":{"greeting":"yo"}}]}', { "my-plugin" }))
      local p = c.entities.plugins[1]
      assert.equal("yo", p.config.greeting)
      assert.equal("X-My-Plugin", p.config.header_name)
      assert.same({ "grpc", "grpcs", "http", "https" }, p.protocols)
    end)

    it("refuses a config violating the schema with Kong's field errors", function()
      local _, err_t = load('{"_format_version":"3.0","plugins":[{"name":"my-plugin",'
                            .. '"config":{"times":11}}]}', { "my-plugin" })
      assert.same({ plugins = { { config = { times = "value should be between 1 and 10" } } } },
                  err_t.fields)
    end)

    it("refuses a plugin that is not enabled", function()
      local _, err_t = load('{"_format_version":"3.0","plugins":[{"name":"defines-globals"}]}',
                            { "my-plugin" })
      assert.same({ plugins = { { name = "plugin 'defines-globals' not enabled; add it to the "
                                          .. "'plugins' configuration property" } } },
                  err_t.fields)
    end)
  end)
end)
