-- kong.meta: the Kong version tollgate is compatible with (KONG_COMPAT.md
-- "Version": plugins gate features on it), and tollgate's own version beside it.

local MAJOR, MINOR, PATCH = 3, 10, 0

local version_table = setmetatable({ major = MAJOR, minor = MINOR, patch = PATCH }, {
  __tostring = function(t)
    return ("%d.%d.%d%s"):format(t.major, t.minor, t.patch, t.suffix or "")
  end,
})

local version = tostring(version_table)

-- tollgate's version: the node's configuration carries it (core/conf.c);
-- outside a node, core/tg.h's TG_VERSION.
local function tollgate_version()
  local k = rawget(_G, "kong")
  if type(k) == "table" and type(k.configuration) == "table"
     and type(k.configuration.tollgate_version) == "string" then
    return k.configuration.tollgate_version
  end
  local src = debug.getinfo(1, "S").source
  local root = src:match("^@(.*)/core/lua/kong/meta%.lua$")
  local f = root and io.open(root .. "/core/tg.h")
  if f then
    local text = f:read("*a")
    f:close()
    return text:match('#define%s+TG_VERSION%s+"([^"]+)"')
  end
  return nil
end

local meta = {
  _NAME = "kong",
  _VERSION = version,
  _VERSION_TABLE = version_table,
  _SERVER_TOKENS = "kong/" .. version,
  version = version,
  _DEPENDENCIES = { nginx = { "1.27.1.2" } },
}

return setmetatable(meta, {
  __index = function(t, k)
    if k == "tollgate_version" then
      local v = tollgate_version()
      rawset(t, k, v)
      return v
    end
  end,
})
