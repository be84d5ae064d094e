-- tollgate.snapshot_json: what of a validated config the workers' Lua needs,
-- as one JSON document built on the control thread (DESIGN.md: nothing Lua
-- crosses threads; each worker decodes it once per snapshot).

local cjson = require "cjson.safe"

local M = {}

local function list(config, name)
  return config.entities and config.entities[name] or {}
end

--- Encodes the plugins (enabled ones only), routes and services of `config`.
-- Routes and services keep their position in the config: the core passes a
-- route's 1-based position to the worker's runloop.
-- @treturn string|nil
-- @treturn string error
function M.encode(config)
  -- no plugin enabled: the workers' Lua never starts, so it needs nothing
  local ok, state = pcall(require, "tollgate.state")
  if ok and type(state) == "table" and state.conf then
    if #require("tollgate.plugins").expand(state.conf.plugins) == 0 then
      return "{}"
    end
  end
  local plugins = {}
  for _, p in ipairs(list(config, "plugins")) do
    if p.enabled ~= false then
      plugins[#plugins + 1] = p
    end
  end
  return cjson.encode({
    hash = config.hash,
    plugins = plugins,
    routes = list(config, "routes"),
    services = list(config, "services"),
  })
end

return M
