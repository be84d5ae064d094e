-- The template for a custom plugin's rockspec. Copy it beside your plugin's
-- kong/ directory as kong-plugin-<name>-<version>-1.rockspec, replace
-- "template-plugin" with your plugin's name, then from that directory:
--   luarocks --lua-version=5.1 make kong-plugin-<name>-<version>-1.rockspec
-- installs kong.plugins.<name>.* into LuaRocks' tree
-- (/usr/local/share/lua/5.1), which is on tollgate's package path: enable it
-- with `plugins = bundled,<name>`. For the template itself:
--   cd spec/fixtures/custom_plugins &&
--   luarocks --lua-version=5.1 make ../../../rockspecs/kong-plugin-template-plugin-0.1.0-1.rockspec
local plugin_name = "template-plugin"

package = "kong-plugin-" .. plugin_name
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null", -- `luarocks make` builds the directory it runs in
}
description = {
  summary = "A tollgate (and Kong) custom plugin",
  license = "Apache-2.0",
}
dependencies = {
  "lua == 5.1",
}
build = {
  type = "builtin",
  modules = {
    ["kong.plugins." .. plugin_name .. ".handler"] =
      "kong/plugins/" .. plugin_name .. "/handler.lua",
    ["kong.plugins." .. plugin_name .. ".schema"] =
      "kong/plugins/" .. plugin_name .. "/schema.lua",
  },
}
