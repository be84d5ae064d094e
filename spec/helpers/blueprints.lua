-- spec/helpers/blueprints.lua: Kong-style blueprints (`bp.services:insert{}`)
-- that work DB-less: rows are collected in the spec process (ids generated
-- here) and written as declarative files, one per workspace, when the gateway
-- starts. PostgreSQL blueprints come with the database issue.
local cjson = require "cjson.safe"

local _M = {}

local DEFAULT_WS_NAME = "default"

-- Random version-4 UUIDs from /dev/urandom.
local function uuid()
  local f = io.open("/dev/urandom", "rb")
  local b = { f:read(16):byte(1, 16) }
  f:close()
  b[7] = b[7] % 16 + 0x40
  b[9] = b[9] % 64 + 0x80
  local hex = {}
  for i = 1, 16 do hex[i] = string.format("%02x", b[i]) end
  local s = table.concat(hex)
  return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-" .. s:sub(13, 16) .. "-" .. s:sub(17, 20)
         .. "-" .. s:sub(21, 32)
end
_M.uuid = uuid

-- Foreign keys each entity may carry, and the entity they point to.
local FOREIGN = {
  routes = { service = "services" },
  plugins = { service = "services", route = "routes", consumer = "consumers" },
  targets = { upstream = "upstreams" },
  snis = { certificate = "certificates" },
  upstreams = { client_certificate = "certificates" },
  services = { client_certificate = "certificates" },
}

-- Order of top-level keys in a written file.
local ENTITIES = { "services", "routes", "consumers", "plugins", "upstreams", "targets",
                   "certificates", "snis", "ca_certificates", "vaults", "keys", "key_sets" }

local function copy(t)
  if type(t) ~= "table" or t == cjson.null then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = copy(v) end
  return setmetatable(c, getmetatable(t))
end

local function defaults_for(name, mock_host, mock_port)
  if name == "services" then
    return { protocol = "http", host = mock_host, port = mock_port }
  end
  return {}
end

local store_mt = {}
store_mt.__index = store_mt

-- Creates a blueprint set. `ctx` carries mock_upstream_host/port for the
-- service defaults (Kong's blueprints point services at the mock upstream).
function _M.new(ctx)
  local rows = {}  -- entity name -> list of rows (in insertion order)
  local workspaces = { { id = nil, name = DEFAULT_WS_NAME } } -- default first
  local bp = { _rows = rows, _workspaces = workspaces }

  local function ws_of(opts, row)
    local ws = (opts and opts.workspace) or row.ws_id
    if ws == nil then return DEFAULT_WS_NAME end
    if type(ws) == "table" then ws = ws.name or ws.id end
    for _, w in ipairs(workspaces) do
      if w.id == ws or w.name == ws then return w.name end
    end
    error("blueprints: unknown workspace '" .. tostring(ws) .. "'", 3)
  end

  local function blueprint(name)
    local b = {}
    rows[name] = rows[name] or {}
    function b:insert(overrides, opts)
      local row = defaults_for(name, ctx.mock_upstream_host, ctx.mock_upstream_port)
      for k, v in pairs(overrides or {}) do row[k] = copy(v) end
      row.id = row.id or uuid()
      for field in pairs(FOREIGN[name] or {}) do
        local ref = row[field]
        if type(ref) == "string" then row[field] = { id = ref } end
        if type(ref) == "table" and ref ~= cjson.null then row[field] = { id = ref.id } end
        if ref == false or ref == cjson.null then row[field] = nil end
      end
      row._ws = ws_of(opts, row)
      row.ws_id = nil
      table.insert(rows[name], row)
      local out = copy(row)
      out._ws = nil
      return out
    end
    function b:insert_n(n, overrides, opts)
      local list = {}
      for i = 1, n do list[i] = self:insert(overrides, opts) end
      return list
    end
    function b:remove(row)
      for i, r in ipairs(rows[name]) do
        if r.id == row.id then table.remove(rows[name], i) return true end
      end
      return nil
    end
    function b:update(row_or_id, changes)
      local id = type(row_or_id) == "table" and row_or_id.id or row_or_id
      for _, r in ipairs(rows[name]) do
        if r.id == id then
          for k, v in pairs(changes or {}) do r[k] = copy(v) end
          local out = copy(r)
          out._ws = nil
          return out
        end
      end
      return nil, "not found"
    end
    return b
  end

  for _, name in ipairs(ENTITIES) do bp[name] = blueprint(name) end
  -- a blueprint for plugin-owned entities (credentials) on demand
  setmetatable(bp, { __index = function(t, name)
    if type(name) ~= "string" or name:sub(1, 1) == "_" then return nil end
    local b = blueprint(name)
    rawset(t, name, b)
    return b
  end })

  bp.workspaces = {}
  function bp.workspaces:insert(overrides)
    local ws = copy(overrides or {})
    ws.name = ws.name or ("ws-" .. uuid():sub(1, 8))
    ws.id = ws.id or uuid()
    table.insert(workspaces, ws)
    return copy(ws)
  end

  -- Shorthands Kong's blueprints have.
  function bp.named_service(name, extra)
    local o = { name = name }
    for k, v in pairs(extra or {}) do o[k] = v end
    return bp.services:insert(o)
  end

  return bp
end

local function export_row(name, row)
  local out = {}
  for k, v in pairs(row) do
    if k ~= "_ws" then
      local fk = FOREIGN[name] and FOREIGN[name][k]
      if fk and type(v) == "table" then
        out[k] = v.id
      elseif type(v) == "table" and next(v) == nil and getmetatable(v) == nil then
        -- an empty table would encode as {}; leave the field to its default
        out[k] = nil
      else
        out[k] = v
      end
    end
  end
  return out
end

-- Builds one declarative table per workspace that has rows (the default
-- workspace always gets one). Returns a list of { name = ws, config = table }.
function _M.export(bp)
  local per_ws = {}
  local order = {}
  for _, w in ipairs(bp._workspaces) do
    per_ws[w.name] = { _format_version = "3.0" }
    if w.name ~= DEFAULT_WS_NAME then per_ws[w.name]._workspace = w.name end
    order[#order + 1] = w.name
  end
  -- targets nest under their upstream and snis under their certificate, the
  -- way Kong's declarative format carries them.
  local by_id = {}
  for _, name in ipairs({ "upstreams", "certificates" }) do
    for _, row in ipairs(bp._rows[name] or {}) do by_id[row.id] = row end
  end
  local nested = { targets = { "upstream", "targets" }, snis = { "certificate", "snis" } }

  local names = {}
  for _, n in ipairs(ENTITIES) do names[#names + 1] = n end
  for n in pairs(bp._rows) do
    local known = false
    for _, e in ipairs(ENTITIES) do if e == n then known = true end end
    if not known then names[#names + 1] = n end
  end

  local exported = {}
  for _, name in ipairs(names) do
    for _, row in ipairs(bp._rows[name] or {}) do
      local conf = per_ws[row._ws]
      local nest = nested[name]
      if nest and row[nest[1]] and by_id[row[nest[1]].id] then
        local parent = exported[row[nest[1]].id]
        local r = export_row(name, row)
        r[nest[1]] = nil
        parent[nest[2]] = parent[nest[2]] or {}
        table.insert(parent[nest[2]], r)
      else
        conf[name] = conf[name] or {}
        local r = export_row(name, row)
        exported[row.id] = r
        table.insert(conf[name], r)
      end
    end
  end
  local list = {}
  for _, wsname in ipairs(order) do
    local conf = per_ws[wsname]
    local has = wsname == DEFAULT_WS_NAME
    for k in pairs(conf) do if k:sub(1, 1) ~= "_" then has = true end end
    if has then list[#list + 1] = { name = wsname, config = conf } end
  end
  return list
end

-- Writes the declarative files into `dir`; returns their paths.
function _M.write(bp, dir)
  local paths = {}
  for i, item in ipairs(_M.export(bp)) do
    local path = string.format("%s/declarative_%02d_%s.json", dir, i, item.name)
    local f = assert(io.open(path, "w"))
    f:write(assert(cjson.encode(item.config)))
    f:close()
    paths[#paths + 1] = path
  end
  return paths
end

return _M
