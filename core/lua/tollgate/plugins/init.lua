-- tollgate.plugins: finding and loading plugins, with Kong's rules.
--
--   plugins.expand(conf_plugins) -> { names }   ("bundled" expanded, "off" = none)
--   plugins.load(names)          -> { by_name = { [name] = p }, sorted = { p... } } | nil, err
--     p = { name, handler, priority, version }
--
-- Handlers are found as `kong.plugins.<name>.handler` on package.path (custom
-- plugins through lua_package_path, Kong's layout), bundled ones under
-- <root>/plugins/<name>/. Load errors use Kong's messages (kong/db/dao/plugins.lua).


local plugins = {}

-- <root>/plugins, from where this file was found (<root>/core/lua/tollgate/plugins)
local function plugins_dir()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/core/lua/tollgate/plugins/init%.lua$")
  return dir and (dir .. "/plugins") or nil
end

local PLUGINS_DIR = plugins_dir()

-- kong.plugins.<name>.<module> -> <root>/plugins/<name>/<module>.lua
local function bundled_searcher(modname)
  local name, rest = modname:match("^kong%.plugins%.([^.]+)%.(.+)$")
  if not name then
    name, rest = modname:match("^tollgate%.plugins%.([^.]+)%.(.+)$")
  end
  if not name or not PLUGINS_DIR then
    return nil
  end
  local path = PLUGINS_DIR .. "/" .. name .. "/" .. rest:gsub("%.", "/") .. ".lua"
  local f = io.open(path)
  if not f then
    return "\n\tno file '" .. path .. "'"
  end
  f:close()
  local chunk, err = loadfile(path)
  if not chunk then
    error(err, 2)
  end
  return chunk
end

do
  local loaders = package.loaders or package.searchers
  local installed = false
  for _, l in ipairs(loaders) do
    if l == bundled_searcher then installed = true end
  end
  if not installed then
    -- after the preload and package.path searchers: tollgate's own paths come first
    table.insert(loaders, 3, bundled_searcher)
  end
end

--- The bundled plugins: the directories under <root>/plugins with a handler.
function plugins.bundled()
  local list = {}
  if not PLUGINS_DIR then
    return list
  end
  local p = io.popen('ls -1 "' .. PLUGINS_DIR .. '" 2>/dev/null')
  if p then
    for name in p:lines() do
      local f = io.open(PLUGINS_DIR .. "/" .. name .. "/handler.lua")
      if f then
        f:close()
        list[#list + 1] = name
      end
    end
    p:close()
  end
  table.sort(list)
  return list
end

--- Expands the `plugins` setting: "bundled" to the bundled plugins, "off" to
-- none; duplicates dropped, order kept.
function plugins.expand(conf_plugins)
  local out, seen = {}, {}
  local function add(n)
    if not seen[n] then
      seen[n] = true
      out[#out + 1] = n
    end
  end
  for _, n in ipairs(conf_plugins or {}) do
    if n == "off" then
      return {}
    elseif n == "bundled" then
      for _, b in ipairs(plugins.bundled()) do add(b) end
    else
      add(n)
    end
  end
  return out
end

local function valid_priority(p)
  return type(p) == "number" and p == p and p ~= math.huge and p ~= -math.huge
         and math.floor(p) == p
end

-- "x", "x.y" or "x.y.z", numeric parts
local function valid_version(v)
  if type(v) ~= "string" then
    return false
  end
  return v:match("^%d+$") or v:match("^%d+%.%d+$") or v:match("^%d+%.%d+%.%d+$")
end

local function implements(handler, phase)
  return type(handler[phase]) == "function"
end

--- Sorts loaded plugins as Kong runs them: PRIORITY descending, then name
-- descending (KONG_COMPAT.md; also for equal priorities of 0).
function plugins.sort(list)
  table.sort(list, function(a, b)
    if a.priority ~= b.priority then
      return a.priority > b.priority
    end
    return a.name > b.name
  end)
  return list
end

--- Loads the handlers of `names`.
-- @treturn table|nil { by_name, sorted }
-- @treturn string Kong's message when a plugin cannot be loaded
function plugins.load(names)
  local loaded = { by_name = {}, sorted = {} }
  for _, name in ipairs(names) do
    local ok, handler = pcall(require, "kong.plugins." .. name .. ".handler")
    if not ok then
      return nil, name .. " plugin is enabled but not installed;\n" .. tostring(handler)
    end
    if type(handler) ~= "table" then
      return nil, string.format("Plugin %q cannot be loaded because its handler is not a table.",
                                name)
    end
    if not valid_priority(handler.PRIORITY) then
      return nil, string.format("Plugin %q cannot be loaded because its PRIORITY field is not "
                                .. "a valid integer number, got: %q.", name,
                                tostring(handler.PRIORITY))
    end
    if not valid_version(handler.VERSION) then
      return nil, string.format("Plugin %q cannot be loaded because its VERSION field does not "
                                .. "follow the \"x.y.z\" format, got: %q.", name,
                                tostring(handler.VERSION))
    end
    if implements(handler, "response") and
       (implements(handler, "header_filter") or implements(handler, "body_filter")) then
      return nil, string.format("Plugin %q can't be loaded because it implements both "
                                .. "`response` and `header_filter` or `body_filter` methods.",
                                name)
    end
    local p = { name = name, handler = handler, priority = handler.PRIORITY,
                version = handler.VERSION }
    loaded.by_name[name] = p
    loaded.sorted[#loaded.sorted + 1] = p
  end
  plugins.sort(loaded.sorted)
  return loaded
end

return plugins
