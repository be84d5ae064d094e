-- tollgate.plugins: finding, loading and validating plugins, with Kong 3.10's
-- rules and messages (kong/db/dao/plugins.lua, kong/db/schema/plugin_loader.lua).
--
--   local plugins = require "tollgate.plugins"
--   plugins.expand(conf_plugins)  -> { names }  ("bundled" expanded, a leading "off" = none)
--   plugins.bundled()             -> { names }  (the plugin dirs under <root>/plugins)
--   plugins.BUNDLED               -> the same list, as a field
--   plugins.load(names)           -> loaded | nil, err
--       loaded = { [name] = p, by_name = { [name] = p }, sorted = { p, ... } }
--       p = { name, handler, schema, priority, version }
--   plugins.sort(list)            -> list, PRIORITY descending, then name descending
--   plugins.schema(name)          -> schema definition | nil, err (registered as the
--                                    plugins entity's subschema `name`)
--   plugins.validate_config(name, config[, row]) -> config with defaults | nil, err_t
--       err_t has the entity's field-error shape: { config = { field = "msg" }, ... }
--   plugins.ROOT, plugins.DIR     -> tollgate's root, <root>/plugins
--
-- Module resolution: requiring this module installs a searcher (second, after
-- package.preload, so tollgate's own tree comes before anything on
-- package.path) that maps `kong.plugins.<name>.<mod>` and
-- `tollgate.plugins.<name>.<mod>` to <root>/plugins/<name>/<mod>.lua. Custom
-- plugins are found by the ordinary package.path searcher as
-- `kong.plugins.<name>.<mod>` (conf `lua_package_path`, Kong's layout);
-- `tollgate.plugins.<name>.<mod>` of a custom plugin resolves to the same
-- module instance as its `kong.plugins` name.
--
-- Departure: Kong's load messages end in "\n"; tollgate's do not (they end up
-- on one log line).

local Schema = require "tollgate.schema"

local type, tostring, ipairs, pairs = type, tostring, ipairs, pairs
local fmt = string.format

local plugins = {}

-- <root> from where this file lives: <root>/core/lua/tollgate/plugins/init.lua
local function find_root()
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) ~= "@" then
    return nil
  end
  local path = src:sub(2)
  if path:sub(1, 1) ~= "/" then
    local pwd = os.getenv("PWD")
    if pwd then
      path = pwd .. "/" .. path
    end
  end
  return path:match("^(.*)/core/lua/tollgate/plugins/init%.lua$")
end

plugins.ROOT = find_root()
plugins.DIR = plugins.ROOT and (plugins.ROOT .. "/plugins") or nil

local function file_exists(path)
  local f = io.open(path, "r")
  if f then
    f:close()
    return true
  end
  return false
end

-- "<name>", "<mod.parts>" of kong.plugins.* / tollgate.plugins.* names
local function split_plugin_module(modname)
  local prefix, name, rest = modname:match("^(%a+)%.plugins%.([^.]+)%.?(.*)$")
  if prefix ~= "kong" and prefix ~= "tollgate" then
    return nil
  end
  if rest == "" then
    rest = "init"
  end
  return prefix, name, rest
end

local function bundled_path(name, rest)
  if not plugins.DIR then
    return nil
  end
  return plugins.DIR .. "/" .. name .. "/" .. rest:gsub("%.", "/") .. ".lua"
end

--- The package searcher for plugin modules (see the header).
function plugins.searcher(modname)
  local prefix, name, rest = split_plugin_module(modname)
  if not prefix then
    return nil
  end
  local path = bundled_path(name, rest)
  if path and file_exists(path) then
    if prefix == "tollgate" then
      -- one module instance under both names
      local kong_name = "kong.plugins." .. name .. (rest == "init" and "" or "." .. rest)
      return function()
        return require(kong_name)
      end
    end
    local chunk, err = loadfile(path)
    if not chunk then
      error(fmt("error loading module '%s' from file '%s':\n\t%s", modname, path, err), 0)
    end
    return chunk
  end
  if prefix == "tollgate" then
    local kong_name = "kong.plugins." .. name .. "." .. rest
    local found = package.searchpath(kong_name, package.path)
    if found then
      return function()
        return require(kong_name)
      end
    end
  end
  return path and ("\n\tno file '" .. path .. "'") or nil
end

do
  local loaders = package.loaders or package.searchers
  local present = false
  for _, l in ipairs(loaders) do
    if l == plugins.searcher then
      present = true
    end
  end
  if not present then
    table.insert(loaders, 2, plugins.searcher)
  end
end

local bundled_cache, bundled_cache_dir

--- The bundled plugins: directories under <root>/plugins with a handler.lua, sorted.
function plugins.bundled()
  if bundled_cache and bundled_cache_dir == plugins.DIR then
    return bundled_cache
  end
  local list = {}
  if plugins.DIR then
    local p = io.popen("ls -1 '" .. plugins.DIR:gsub("'", "'\\''") .. "' 2>/dev/null")
    if p then
      for name in p:lines() do
        if name:match("^[%w_-]+$") and file_exists(plugins.DIR .. "/" .. name .. "/handler.lua") then
          list[#list + 1] = name
        end
      end
      p:close()
    end
  end
  table.sort(list)
  bundled_cache, bundled_cache_dir = list, plugins.DIR
  return list
end

--- Expands the `plugins` setting (an array, or a comma-separated string) as
-- Kong's conf loader: a leading "off" means none ("off" elsewhere is ignored),
-- "bundled" is the bundled plugins; names trimmed, duplicates dropped, order kept.
function plugins.expand(conf_plugins)
  if type(conf_plugins) == "string" then
    local list = {}
    for item in conf_plugins:gmatch("[^,]+") do
      list[#list + 1] = item
    end
    conf_plugins = list
  end
  local out, seen = {}, {}
  local function add(n)
    if n ~= "" and not seen[n] then
      seen[n] = true
      out[#out + 1] = n
    end
  end
  if type(conf_plugins) ~= "table" then
    return out
  end
  for i, n in ipairs(conf_plugins) do
    n = tostring(n):match("^%s*(.-)%s*$")
    if n == "off" then
      if i == 1 then
        return {}
      end
    elseif n == "bundled" then
      for _, b in ipairs(plugins.bundled()) do
        add(b)
      end
    else
      add(n)
    end
  end
  return out
end

local function valid_priority(p)
  return type(p) == "number" and p == p and math.abs(p) ~= math.huge and math.floor(p) == p
end

-- "x", "x.y" or "x.y.z" (numeric parts, an optional leading "v" and a
-- "-suffix"/"+build" as Kong's version parser accepts) -> the cleaned string
local function valid_version(v)
  if type(v) ~= "string" then
    return nil
  end
  local core = v:match("^%s*v?([%d.]+)[-+]?[%w.+-]*%s*$")
  if not core or core:sub(-1) == "." or core:find("%.%.") then
    return nil
  end
  local parts = {}
  for d in core:gmatch("%d+") do
    parts[#parts + 1] = tostring(tonumber(d))
  end
  if #parts < 1 or #parts > 3 then
    return nil
  end
  return table.concat(parts, ".")
end

plugins.valid_priority = valid_priority
plugins.valid_version = valid_version

local function implements(handler, method)
  return type(handler) == "table" and type(handler[method]) == "function"
end

--- Sorts plugins as Kong runs them: PRIORITY descending, equal priorities
-- (0 included: tollgate's choice, Kong leaves them unordered) by name descending.
-- Items are { name=, priority= } or { name=, handler = { PRIORITY = } }.
function plugins.sort(list)
  local function prio(p)
    local v = p.priority
    if v == nil and type(p.handler) == "table" then
      v = p.handler.PRIORITY
    end
    return tonumber(v) or 0
  end
  table.sort(list, function(a, b)
    local pa, pb = prio(a), prio(b)
    if pa ~= pb then
      return pa > pb
    end
    return a.name > b.name
  end)
  return list
end

local function plugins_entity()
  return require("tollgate.entities").get("plugins")
end

--- Loads `kong.plugins.<name>.schema` and registers it as the plugins
-- entity's subschema (once per lua_State).
-- @treturn table|nil the schema definition
-- @treturn string Kong's message
function plugins.schema(name)
  local entity = plugins_entity()
  local modname = "kong.plugins." .. name .. ".schema"
  local ok, def = pcall(require, modname)
  if not ok then
    if type(def) == "string" and not def:find("module '" .. modname .. "' not found", 1, true) then
      return nil, def -- the schema exists but fails to load: its own error
    end
    return nil, "no configuration schema found for plugin: " .. name
  end
  if type(def) ~= "table" then
    return nil, "no configuration schema found for plugin: " .. name
  end
  if entity.subschemas and entity.subschemas[name] and entity.subschemas[name].__tg_def == def then
    return def
  end
  local sok, err = entity:new_subschema(name, def)
  if not sok then
    return nil, "error initializing schema for plugin: " .. tostring(err)
  end
  entity.subschemas[name].__tg_def = def
  return def
end

-- Loads one plugin: handler checks, then its schema.
local function load_one(name)
  local modname = "kong.plugins." .. name .. ".handler"
  local ok, handler = pcall(require, modname)
  if not ok then
    local msg = tostring(handler)
    if msg:find("module '" .. modname .. "' not found", 1, true) then
      return nil, name .. " plugin is enabled but not installed;\n" .. msg
    end
    return nil, msg -- the handler exists but its main chunk failed
  end
  if type(handler) == "table" then
    if not valid_priority(handler.PRIORITY) then
      return nil, fmt("Plugin %q cannot be loaded because its PRIORITY field is not "
                      .. "a valid integer number, got: %q.", name, tostring(handler.PRIORITY))
    end
    local v = valid_version(handler.VERSION)
    if not v then
      return nil, fmt("Plugin %q cannot be loaded because its VERSION field does not "
                      .. "follow the \"x.y.z\" format, got: %q.", name, tostring(handler.VERSION))
    end
    handler.VERSION = v
  else
    return nil, fmt("Plugin %q cannot be loaded because its handler module did not "
                    .. "return a table.", name)
  end
  if implements(handler, "response") and
     (implements(handler, "header_filter") or implements(handler, "body_filter")) then
    return nil, fmt("Plugin %q can't be loaded because it implements both `response` "
                    .. "and `header_filter` or `body_filter` methods.", name)
  end
  local schema, err = plugins.schema(name)
  if not schema then
    return nil, err
  end
  for _, item in ipairs(schema.fields or {}) do
    local fname, field = next(item)
    if type(field) == "table" and field.eq == Schema.null then
      if fname == "consumer" then
        handler.no_consumer = true
      elseif fname == "route" then
        handler.no_route = true
      elseif fname == "service" then
        handler.no_service = true
      end
    end
  end
  return { name = name, handler = handler, schema = schema, priority = handler.PRIORITY,
           version = handler.VERSION }
end

--- Loads the plugins `names` (expanded). All are tried; errors are reported
-- together as Kong's load_plugin_schemas does.
-- @treturn table|nil loaded (see the header)
-- @treturn string "error loading plugin schemas: on plugin '<name>': <reason>[; ...]"
function plugins.load(names)
  local loaded = { by_name = {}, sorted = {} }
  local errs
  for _, name in ipairs(names or {}) do
    if not loaded.by_name[name] then
      local p, err = load_one(name)
      if p then
        loaded.by_name[name] = p
        loaded.sorted[#loaded.sorted + 1] = p
        if name ~= "by_name" and name ~= "sorted" then
          loaded[name] = p
        end
      else
        errs = errs or {}
        errs[#errs + 1] = "on plugin '" .. name .. "': " .. tostring(err)
      end
    end
  end
  if errs then
    return nil, "error loading plugin schemas: " .. table.concat(errs, "; ")
  end
  plugins.sort(loaded.sorted)
  return loaded
end

--- Validates a plugin's configuration through its schema, as the Admin API
-- and the declarative loader do: `row` (optional) gives the other plugin
-- fields (route, service, consumer, protocols, ...).
-- @treturn table|nil the config with defaults filled
-- @treturn table|string field errors ({ config = {...}, consumer = "...", name = "..." }),
--          or a load error message
function plugins.validate_config(name, config, row)
  local def, err = plugins.schema(name)
  if not def then
    return nil, { name = err }
  end
  local entity = plugins_entity()
  local input = {}
  for k, v in pairs(row or {}) do
    input[k] = v
  end
  input.name = name
  input.config = config == nil and {} or config
  input = entity:process_auto_fields(input, "insert")
  local ok, errs = entity:validate(input)
  if not ok then
    return nil, errs
  end
  return input.config, nil, input
end

setmetatable(plugins, {
  __index = function(_, k)
    if k == "BUNDLED" then
      return plugins.bundled()
    end
  end,
})

return plugins
