-- tollgate.admin.kong: Kong's node endpoints — GET /, /endpoints, /status,
-- /plugins/enabled — and the DB-less /config (kong/api/routes/kong.lua,
-- health.lua, config.lua).

local http = require "tollgate.admin.http"
local Schema = require "tollgate.schema"

local fmt, type, pairs, ipairs, tostring, tonumber = string.format, type, pairs, ipairs,
                                                     tostring, tonumber
local sort = table.sort
local null = http.null

local _M = {
  KONG_VERSION = "3.10.0",
  EMPTY_CONFIG_HASH = "00000000000000000000000000000000",
}

local function state()
  return require "tollgate.state"
end

local function conf()
  return state().conf or {}
end

local function dbless()
  local c = conf()
  return c.database == "off" or c.database == nil
end

-- kong.configuration.remove_sensitive()
local SENSITIVE = {
  pg_password = true, pg_ro_password = true, proxy_server = true,
  declarative_config_string = true, cluster_cert_key = true, ssl_cert_key = true,
  client_ssl_cert_key = true, admin_ssl_cert_key = true, admin_gui_ssl_cert_key = true,
  status_ssl_cert_key = true, debug_ssl_cert_key = true,
}
_M.SENSITIVE = SENSITIVE

function _M.remove_sensitive(c)
  local out = Schema.deep_copy(c or {})
  out["$refs"] = nil
  for k in pairs(SENSITIVE) do
    if out[k] ~= nil and out[k] ~= null then
      out[k] = "******"
    end
  end
  return out
end

--- The configuration hash /status reports (Kong's empty-config hash when
-- nothing but workspaces is loaded).
function _M.current_hash()
  local config = state().config
  if not config then
    return nil
  end
  for _, rows in pairs(config.entities or {}) do
    if #rows > 0 then
      return config.hash
    end
  end
  return _M.EMPTY_CONFIG_HASH
end

---------------------------------------------------------------------------
-- plugins

-- name -> handler module, for the plugins this node loads (`plugins` in
-- tollgate.conf; "bundled" expands to tollgate.plugins' list when present).
function _M.loaded_plugins()
  local c = conf()
  if type(c.loaded_plugins) == "table" then
    return c.loaded_plugins
  end
  local names = c.plugins
  if type(names) == "string" then
    names = { names }
  end
  local out = {}
  for _, name in ipairs(names or { "bundled" }) do
    if name == "bundled" then
      local ok, bundled = pcall(require, "tollgate.plugins")
      if ok and type(bundled) == "table" and type(bundled.BUNDLED) == "table" then
        for _, b in ipairs(bundled.BUNDLED) do out[b] = true end
      end
    elseif name ~= "off" then
      out[name] = true
    end
  end
  return out
end

local function available_plugins()
  local out = {}
  for name in pairs(_M.loaded_plugins()) do
    local ok, handler = pcall(require, "kong.plugins." .. name .. ".handler")
    if ok and type(handler) == "table" then
      out[name] = { version = handler.VERSION, priority = handler.PRIORITY }
    end
  end
  return out
end

local function enabled_in_cluster()
  local names, seen = http.array(), {}
  local config = state().config
  for _, row in ipairs(config and config.entities and config.entities.plugins or {}) do
    if not seen[row.name] then
      seen[row.name] = true
      names[#names + 1] = row.name
    end
  end
  return names
end

--- The node id: the configured one, else the instance's.
function _M.node_id()
  local c = conf()
  return c.node_id ~= nil and c.node_id ~= null and c.node_id ~= "" and c.node_id
         or state().node_id
end

---------------------------------------------------------------------------
-- GET /

function _M.root()
  local st = state()
  local c = conf()
  local configuration = _M.remove_sensitive(c)
  local workers = http.array()
  local ok, control = pcall(require, "tollgate.c.control")
  local n = ok and control.workers and control.workers() or 0
  for i = 1, n do
    workers[i] = st.pid -- worker threads share the process id
  end
  local pids = { master = st.pid }
  if n > 0 then
    pids.workers = workers
  end
  return http.response(200, {
    tagline = "Welcome to kong",
    version = _M.KONG_VERSION,
    tollgate_version = c.tollgate_version,
    edition = "community",
    hostname = st.hostname,
    node_id = _M.node_id(),
    timers = { running = 0, pending = 0 },
    plugins = {
      available_on_server = available_plugins(),
      enabled_in_cluster = enabled_in_cluster(),
    },
    lua_version = jit and jit.version or _VERSION,
    configuration = configuration,
    pids = pids,
  })
end

---------------------------------------------------------------------------
-- GET /status (admin and status listeners)

-- kong.tools.string.bytes_to_str
local function bytes_to_str(bytes, unit, scale)
  local u = (unit or ""):lower()
  if u == "" or u == "b" then
    return fmt("%d", bytes)
  end
  scale = scale or 2
  if type(scale) ~= "number" or scale < 0 then
    error("scale must be equal or greater than 0", 0)
  end
  local spec = "%." .. fmt("%d", scale) .. "f"
  if u == "k" then return fmt(spec .. " KiB", bytes / 2 ^ 10) end
  if u == "m" then return fmt(spec .. " MiB", bytes / 2 ^ 20) end
  if u == "g" then return fmt(spec .. " GiB", bytes / 2 ^ 30) end
  error("invalid unit '" .. unit .. "' (expected 'k/K', 'm/M', or 'g/G')", 0)
end
_M.bytes_to_str = bytes_to_str

function _M.status(self)
  local unit, scale = "m", nil
  local args = self.args
  if args.unit ~= nil then unit = tostring(http.first(args.unit)) end
  if args.scale ~= nil then scale = tonumber(http.first(args.scale)) end
  local ok, err = pcall(bytes_to_str, 0, unit, scale)
  if not ok then
    return http.message(400, err)
  end
  local st = state()
  local dicts = {}
  for name, m in pairs(require("tollgate.shdict").stats()) do
    dicts[name] = { allocated_slabs = bytes_to_str(m.used, unit, scale),
                    capacity = bytes_to_str(m.capacity, unit, scale) }
  end
  local body = {
    memory = {
      lua_shared_dicts = dicts,
      workers_lua_vms = http.array({
        { http_allocated_gc = bytes_to_str(collectgarbage("count") * 1024, unit, scale),
          pid = st.pid },
      }),
    },
    server = st.stats(),
    database = { reachable = true },
  }
  if dbless() or conf().role == "data_plane" then
    body.configuration_hash = _M.current_hash() or null
    body.database = nil
  elseif type(st.database_reachable) == "function" then
    body.database.reachable = st.database_reachable() and true or false
  end
  return http.response(200, body)
end

---------------------------------------------------------------------------
-- /config (DB-less)

local ONLY_DBLESS = "this endpoint is only available when Kong is configured to not use a database"

local function truthy(v)
  if type(v) == "string" then
    v = v:lower()
    return v == "true" or v == "1" or v == "on" or v == "yes"
  end
  return v == true or v == 1
end

function _M.config_get(self)
  if not dbless() then
    return http.message(400, ONLY_DBLESS)
  end
  local config = state().config
  if not config then
    return http.response(200, { config = "_format_version: \"3.0\"\n_transform: false\n" })
  end
  local declarative = require "tollgate.declarative"
  local ok, yaml = pcall(declarative.export, config, { workspace = self.ws.name })
  if not ok then
    error("failed exporting config: " .. tostring(yaml), 0)
  end
  return http.response(200, { config = yaml })
end

-- Kong's 400 body for a refused config: the declarative error table, with
-- flattened_errors only when asked for.
local function declarative_error(err_t, flatten)
  local body = {}
  for k, v in pairs(err_t) do body[k] = v end
  body.source, body.sources = nil, nil
  if not flatten then
    body.flattened_errors = nil
  elseif body.flattened_errors == nil then
    body.flattened_errors = http.array()
  end
  return http.response(400, body)
end

-- The 201 body: { services = { [id] = row }, ... } without workspaces or ws_id.
local function created_body(config)
  local out = {}
  for name, rows in pairs(config.entities or {}) do
    if #rows > 0 then
      local map = {}
      for _, row in ipairs(rows) do
        local r = {}
        for k, v in pairs(row) do r[k] = v end
        r.ws_id = nil
        map[row.id] = r
      end
      out[name] = map
    end
  end
  return out
end

function _M.config_post(self)
  if not dbless() then
    return http.message(400, ONLY_DBLESS)
  end
  local params = self.req.params
  local flatten = truthy(params.flatten_errors)
  local check_hash = tostring(params.check_hash) == "1"
  params.flatten_errors, params.check_hash = nil, nil

  local declarative = require "tollgate.declarative"
  local opts = require("tollgate.state").declarative_opts(
    { workspace = self.prefix ~= "" and self.ws.name or nil })
  local config, err_t
  if params._format_version ~= nil then
    local doc = {}
    for k, v in pairs(params) do doc[k] = v end
    config, err_t = declarative.load_tables({ doc }, opts)
  else
    local text = params.config
    if text == nil then
      if self.req.body ~= "" then
        text = self.req.body
      else
        return http.message(400, "expected a declarative configuration")
      end
    end
    if type(text) == "table" then
      config, err_t = declarative.load_tables({ text }, opts)
    else
      config, err_t = declarative.load_string(tostring(text), opts)
    end
  end
  if not config then
    if type(err_t) ~= "table" then
      error("declarative loader: " .. tostring(err_t), 0)
    end
    return declarative_error(err_t, flatten)
  end
  if check_hash and state().config and config.hash == state().config.hash then
    return http.response(304, nil)
  end
  local ok, err = state().apply(config)
  if not ok then
    error("failed applying the declarative config: " .. tostring(err), 0)
  end
  return http.response(201, created_body(config))
end

---------------------------------------------------------------------------

function _M.plugins_enabled()
  local names = http.array()
  for name in pairs(_M.loaded_plugins()) do
    names[#names + 1] = name
  end
  sort(names)
  return http.response(200, { enabled_plugins = names })
end

--- GET /endpoints: every route pattern, ":x" as "{x}", sorted by segment.
function _M.endpoints_body(patterns)
  local list = http.array()
  for _, p in ipairs(patterns) do
    list[#list + 1] = (p:gsub(":([^/:]+)", "{%1}"))
  end
  sort(list, function(a, b)
    return a:gsub("/", "\0") < b:gsub("/", "\0")
  end)
  return http.response(200, { data = list })
end

return _M
