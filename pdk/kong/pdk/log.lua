--- kong.log: logging to the error log with Kong's prefixes.
-- Lines read "[kong] handler.lua:12 [plugin-name] message" when a plugin is
-- running (its name from tollgate.ctx), "[kong] file.lua:12 message" otherwise.
-- @module kong.log
local base = require "kong.pdk.private.base"
local tctx = require "tollgate.ctx"
local cjson = require "cjson.safe"

local C = base.C
local get_req = base.get_req
local check_phase = base.check_phase
local getinfo = debug.getinfo
local select = select
local tostring = tostring
local type = type
local pairs = pairs
local ipairs = ipairs
local error = error
local concat = table.concat
local match = string.match
local find = string.find
local sub = string.sub
local tonumber = tonumber

local LEVELS = {
  debug = 0, info = 1, notice = 2, warn = 3, err = 4, crit = 5, alert = 6, emerg = 7,
}

local phases_with_ctx = base.phases("rewrite", "access", "header_filter", "response",
                                    "body_filter", "log")

local function file_src(info)
  local src = info and info.short_src
  if not src then
    return "?"
  end
  return match(src, "([^/]+)$") or src
end

local function build(level_no, namespace, stack_level, ...)
  if level_no < C.tg_pdk_log_level() then
    return
  end
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    parts[i] = tostring((select(i, ...)))
  end
  local info = getinfo(stack_level, "Sl")
  local where = file_src(info) .. ":" .. tostring(info and info.currentline or "?")
  local ns = namespace
  if ns == nil then
    local r = get_req()
    if r ~= nil then
      ns = tctx.current_plugin(r)
    else
      ns = tctx.current_plugin(nil)
    end
  end
  local msg
  if ns and ns ~= "core" then
    msg = "[kong] " .. where .. " [" .. ns .. "] " .. concat(parts)
  else
    msg = "[kong] " .. where .. " " .. concat(parts)
  end
  C.tg_pdk_log(level_no, msg, #msg)
end

local function pretty(v)
  local ok, pl = pcall(require, "pl.pretty")
  if ok then
    return pl.write(v, "  ")
  end
  return tostring(v)
end

-- kong.log.set_serialize_value's edits applied to the serialized table
local function valid_value(v, seen)
  local t = type(v)
  if v == nil or v == cjson.null or t == "number" or t == "string" or t == "boolean" then
    return true
  end
  if t ~= "table" or seen[v] then
    return false
  end
  seen[v] = true
  for k, val in pairs(v) do
    local tk = type(k)
    if (tk ~= "string" and tk ~= "number" and tk ~= "boolean") or not valid_value(val, seen) then
      return false
    end
  end
  return true
end

local function edit_result(root, edits)
  for _, item in ipairs(edits) do
    if not valid_value(item.value, {}) then
      error("value must be nil, a number, string, boolean or a non-self-referencial table " ..
            "containing numbers, string and booleans", 3)
    end
    local node = root
    local key = item.key
    local pos = 1
    while true do
      local dot = find(key, ".", pos, true)
      if not dot then
        break
      end
      local k = sub(key, pos, dot - 1)
      if type(node[k]) ~= "table" then
        node[k] = {}
      end
      node = node[k]
      pos = dot + 1
    end
    local last = sub(key, pos)
    local has = node[last] ~= nil
    if item.mode == "set" or (item.mode == "add" and not has)
       or (item.mode == "replace" and has) then
      node[last] = item.value
    end
  end
  return root
end

local function new_log(kong, namespace)
  local L = {}
  for name, no in pairs(LEVELS) do
    L[name] = function(...)
      build(no, namespace, 3, ...) -- not a tail call: level 3 is the caller
    end
  end
  L.trace = function() end

  --- Pretty-prints its arguments at notice level.
  -- @function kong.log.inspect
  local inspect_on = true
  L.inspect = setmetatable({
    on = function() inspect_on = true end,
    off = function() inspect_on = false end,
  }, {
    __call = function(_, ...)
      if not inspect_on then
        return
      end
      local n = select("#", ...)
      local parts = {}
      for i = 1, n do
        parts[i] = pretty((select(i, ...)))
      end
      build(LEVELS.notice, namespace, 3, concat(parts, " "))
    end,
  })

  --- Sets a value in the table kong.log.serialize returns ("a.b" paths).
  -- @function kong.log.set_serialize_value
  -- @tparam string key
  -- @param value
  -- @tparam[opt] table options mode: "set" (default), "add" or "replace"
  function L.set_serialize_value(key, value, options)
    local r = get_req()
    check_phase(phases_with_ctx, r)
    if type(key) ~= "string" then
      error("key must be a string", 2)
    end
    local mode = options and options.mode or "set"
    if mode ~= "set" and mode ~= "add" and mode ~= "replace" then
      error("mode must be 'set', 'add' or 'replace'", 2)
    end
    local shared = tctx.get(r)
    local list = shared.serialize_values
    if not list then
      list = {}
      shared.serialize_values = list
    end
    list[#list + 1] = { key = key, value = value, mode = mode }
  end

  --- A Kong-shaped summary of the request for loggers (log phase).
  -- @function kong.log.serialize
  function L.serialize()
    local r = get_req()
    check_phase(base.PHASES.log, r)
    local req, resp = kong.request, kong.response
    local shared = tctx.get(r)
    local headers = req.get_headers()
    if headers["authorization"] ~= nil then
      headers["authorization"] = "REDACTED"
    end
    if headers["proxy-authorization"] ~= nil then
      headers["proxy-authorization"] = "REDACTED"
    end
    local uri = req.get_path_with_query()
    local port = req.get_port()
    local ffi = require "ffi"
    local rid = ""
    if C.tg_pdk_req_get_id(r, base.s1, base.n1) >= 0 then
      rid = ffi.string(base.s1[0], base.n1[0])
    end
    local start = req.get_start_time()
    local now_ms = math.floor(C.tg_pdk_now() * 1000 + 0.5)
    local consumer = shared.authenticated_consumer
    local credential = shared.authenticated_credential
    local entity
    if credential then
      entity = { id = credential.id, consumer_id = credential.consumer_id }
    end
    local root = {
      request = {
        id = rid,
        uri = uri,
        url = req.get_scheme() .. "://" .. req.get_host() .. ":" .. port .. uri,
        querystring = req.get_query(),
        method = req.get_method(),
        headers = headers,
        size = tonumber(shared.request_size) or 0,
      },
      upstream_uri = shared.upstream_uri or uri,
      upstream_status = shared.upstream_status or "",
      response = {
        status = resp.get_status(),
        headers = resp.get_headers(),
        size = tonumber(shared.response_size) or 0,
      },
      latencies = {
        kong = shared.KONG_PROXY_LATENCY or 0,
        proxy = shared.KONG_WAITING_TIME or -1,
        request = now_ms - start,
        receive = 0,
      },
      authenticated_entity = entity,
      route = shared.route,
      service = shared.service,
      consumer = consumer,
      client_ip = kong.client.get_forwarded_ip(),
      started_at = start,
      source = resp.get_source(),
    }
    if shared.serialize_values then
      root = edit_result(root, shared.serialize_values)
    end
    return root
  end

  return L
end

return { new = new_log, edit_result = edit_result, LEVELS = LEVELS }
