--- kong.pdk: builds the `kong` global plugins see.
--   _G.kong = require("kong.pdk").new(configuration)
-- @module kong.pdk
local base = require "kong.pdk.private.base"
local tctx = require "tollgate.ctx"

local C = base.C
local get_req = base.get_req
local check_phase = base.check_phase
local type = type
local error = error
local pairs = pairs
local tonumber = tonumber
local setmetatable = setmetatable

local pdk = {}

local ROUTER_PHASES = base.phases("access", "header_filter", "response", "body_filter", "log")

-- kong.ctx.shared / kong.ctx.plugin: looked up on each access, as Kong's, so
-- they are the current request's own tables (pairs, next and # work on them).
local function new_ctx()
  return setmetatable({}, {
    __index = function(_, k)
      if k ~= "shared" and k ~= "plugin" then
        return nil
      end
      local r = get_req()
      if r == nil then
        error("kong.ctx." .. k .. " is only available in a request", 2)
      end
      if k == "shared" then
        return tctx.get(r)
      end
      local name = tctx.current_plugin(r)
      return tctx.plugin(r, name or "?")
    end,
    __newindex = function()
      error("kong.ctx cannot be written to", 2)
    end,
  })
end

-- IPv4 "a.b.c.d" -> number, or nil
local function ipv4_num(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return nil
  end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then
    return nil
  end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- trusted_ips matching outside a request (the core's matcher needs one)
local function conf_trusts(list, ip)
  if type(list) == "string" then
    list = { list }
  end
  if type(list) ~= "table" then
    return false
  end
  local n = ipv4_num(ip)
  for _, cidr in pairs(list) do
    if cidr == ip then
      return true
    end
    if n then
      local net, bits = cidr:match("^([%d%.]+)/(%d+)$")
      local nn = net and ipv4_num(net)
      if nn then
        local span = 2 ^ (32 - tonumber(bits))
        if math.floor(n / span) == math.floor(nn / span) then
          return true
        end
      end
    elseif cidr == "::/0" and ip:find(":", 1, true) then
      return true
    end
  end
  return false
end

local node_id

local function read_node_id(conf)
  if node_id then
    return node_id
  end
  local prefix = conf.prefix
  local path = prefix and (prefix .. "/node.id")
  if path then
    local f = io.open(path, "r")
    if f then
      local id = f:read("*l")
      f:close()
      if id and #id == 36 then
        node_id = id
        return id
      end
    end
  end
  local util = require "tollgate.c.util"
  local id = util.uuid_v4()
  if path then
    -- first writer wins; the others read it back
    local f = io.open(path, "a+")
    if f then
      f:seek("set", 0)
      local existing = f:read("*l")
      if existing and #existing == 36 then
        id = existing
      else
        f:write(id, "\n")
      end
      f:close()
    end
  end
  node_id = id
  return id
end

--- Builds the kong table for a configuration (a plain table).
function pdk.new(conf)
  if conf ~= nil and type(conf) ~= "table" then
    error("kong_config must be a table", 2)
  end
  conf = conf or {}
  local kong = {}
  kong.version = "3.10.0"
  kong.version_num = 3010000
  kong.configuration = setmetatable({
    remove_sensitive = function()
      local out = {}
      for k, v in pairs(conf) do
        out[k] = v
      end
      for _, k in pairs({ "pg_password", "pg_ro_password", "cassandra_password" }) do
        if out[k] ~= nil then
          out[k] = "******"
        end
      end
      return out
    end,
  }, {
    __index = function(_, k)
      return conf[k]
    end,
    __newindex = function()
      error("cannot write to configuration", 2)
    end,
  })

  kong.ctx = new_ctx()
  kong.log = require("kong.pdk.log").new(kong)
  kong.request = require("kong.pdk.request").new(kong)
  kong.response = require("kong.pdk.response").new(kong)
  kong.client = require("kong.pdk.client").new(kong)
  kong.service = require("kong.pdk.service").new(kong)
  -- the node cache (Kong: kong.cache and kong.core_cache), once ngx.shared exists
  local g_ngx = rawget(_G, "ngx")
  if g_ngx and g_ngx.shared then
    local cache = require "kong.cache"
    kong.cache = cache.for_configuration(conf, "kong_db_cache", "invalidations")
    kong.core_cache = cache.for_configuration(conf, "kong_core_db_cache")
  end

  kong.ip = {
    --- Whether an address is in trusted_ips.
    is_trusted = function(ip)
      if type(ip) ~= "string" then
        return false
      end
      local r = get_req()
      if r ~= nil then
        return C.tg_pdk_client_is_trusted(r, ip, #ip) == 1
      end
      return conf_trusts(conf.trusted_ips, ip)
    end,
  }

  kong.node = {
    get_id = function()
      return read_node_id(conf)
    end,
    get_hostname = function()
      local f = io.open("/proc/sys/kernel/hostname", "r")
      local h = f and f:read("*l")
      if f then
        f:close()
      end
      return h or os.getenv("HOSTNAME") or "localhost"
    end,
    get_memory_stats = require("kong.pdk.node").get_memory_stats,
  }

  kong.cluster = {
    --- In DB-less mode Kong has no cluster id in a database: nil.
    get_id = function()
      return nil
    end,
  }

  kong.table = {
    new = function(narr, nrec)
      local ok, tnew = pcall(require, "table.new")
      if ok then
        return tnew(narr or 0, nrec or 0)
      end
      return {}
    end,
    clear = function(t)
      local ok, tclear = pcall(require, "table.clear")
      if ok then
        return tclear(t)
      end
      for k in pairs(t) do
        t[k] = nil
      end
    end,
    merge = function(t1, t2)
      local res = {}
      if t1 then
        for k, v in pairs(t1) do res[k] = v end
      end
      if t2 then
        for k, v in pairs(t2) do res[k] = v end
      end
      return res
    end,
  }

  kong.router = {
    --- The route the request matched.
    get_route = function()
      local r = get_req()
      check_phase(ROUTER_PHASES, r)
      local t = tctx.get(r)
      return t and t.route
    end,
    --- The service of the matched route.
    get_service = function()
      local r = get_req()
      check_phase(ROUTER_PHASES, r)
      local t = tctx.get(r)
      return t and t.service
    end,
  }

  kong.plugin = {
    --- The id of the running plugin instance.
    get_id = function()
      local _, id = tctx.current_plugin(get_req())
      return id
    end,
  }

  return kong
end

return pdk
