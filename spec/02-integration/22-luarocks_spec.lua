-- rockspecs/: `luarocks make` on a custom plugin's rockspec installs it where
-- tollgate finds it, and the PDK and spec helpers rocks install. Uses
-- Debian's luarocks (LuaJIT is Lua 5.1) with a throwaway tree.
local helpers = require "spec.helpers"
local scratch = require "spec.helpers.scratch"

local ROCKSPECS = helpers.root .. "/rockspecs"
local PLUGIN_TREE = helpers.root .. "/spec/fixtures/custom_plugins"

local tmp

local function luarocks(args, cwd)
  return helpers.execute("cd " .. helpers.shell_quote(cwd or helpers.root)
                         .. " && luarocks --lua-version=5.1 --tree=" .. helpers.shell_quote(tmp.dir)
                         .. " " .. args)
end

describe("rockspecs", function()
  lazy_setup(function()
    tmp = scratch.new()
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    tmp:remove()
  end)

  it("the template plugin's rock installs kong.plugins.<name>.handler and .schema", function()
    local ok, _, out, err = luarocks("make " .. ROCKSPECS
                                     .. "/kong-plugin-template-plugin-0.1.0-1.rockspec",
                                     PLUGIN_TREE)
    assert(ok, tostring(out) .. tostring(err))
    assert.truthy(io.open(tmp:path("share/lua/5.1/kong/plugins/template-plugin/handler.lua")))
    assert.truthy(io.open(tmp:path("share/lua/5.1/kong/plugins/template-plugin/schema.lua")))
  end)

  it("tollgate runs the plugin from the rock tree", function()
    local lua_dir = tmp:path("share/lua/5.1")
    local bp = helpers.get_db_utils("off", nil, { "template-plugin" })
    local route = bp.routes:insert { service = bp.services:insert(), paths = { "/rock" } }
    bp.plugins:insert { name = "template-plugin", route = route, config = { greeting = "rock" } }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,template-plugin",
      lua_package_path = lua_dir .. "/?.lua;" .. lua_dir .. "/?/init.lua",
    })
    local client = helpers.proxy_client()
    local res = client:get("/rock/x")
    assert.res_status(200, res)
    assert.equal("rock", assert.response(res).has.header("X-Template-Response"))
    assert.equal("rock", assert.request(res).has.header("X-Template-Request"))
    client:close()
    helpers.stop_kong()
  end)

  it("LuaRocks' default tree is on tollgate's package path", function()
    local ok, _, dir = helpers.execute("luarocks --lua-version=5.1 config deploy_lua_dir")
    assert.is_true(ok)
    dir = dir:match("^%s*(.-)%s*$")
    tmp:write("path.lua", "io.write(package.path)")
    local _, _, path = helpers.execute(helpers.shell_quote(helpers.bin_path) .. " lua "
                                       .. helpers.shell_quote(tmp:path("path.lua")))
    assert.matches(";" .. dir .. "/?.lua;", path, 1, true)
    assert.matches(";" .. dir .. "/?/init.lua;", path, 1, true)
  end)

  it("the tollgate-pdk and tollgate-spec-helpers rocks install their modules", function()
    for _, rock in ipairs({ "tollgate-pdk", "tollgate-spec-helpers" }) do
      local ok, _, out, err = luarocks("make " .. ROCKSPECS .. "/" .. rock .. "-0.1.0-1.rockspec")
      assert(ok, tostring(out) .. tostring(err))
    end
    for _, f in ipairs({ "kong/pdk/request.lua", "kong/db/schema/typedefs.lua",
                         "resty/openssl/x509/init.lua", "ngx/base64.lua",
                         "tollgate/openssl.lua", "tollgate/openssl_param.lua", "spec/helpers.lua",
                         "spec/helpers/blueprints.lua" }) do
      assert.truthy(io.open(tmp:path("share/lua/5.1/" .. f)), f)
    end
    local ok, _, out = luarocks("show tollgate-pdk")
    assert.is_true(ok)
    assert.matches("resty.openssl.pkey", out, 1, true)
  end)
end)
