-- tollgate.ctx: per-request Lua state of the PDK, keyed by the request
-- pointer's address (no per-request closures).
--
--   ctx.get(req)                 the request's shared table (kong.ctx.shared, ngx.ctx)
--   ctx.plugin(req, key)         the table of one plugin for the request (kong.ctx.plugin)
--   ctx.clear(req)               forget the request (the runloop, after log)
--   ctx.set_current(req, p) / ctx.set_current_plugin(req, name, id) /
--     ctx.current_plugin(req) -> name, id
--   ctx.EXIT                     what kong.response.exit yields to the runloop
--   ctx.set_phase(name) / ctx.phase()   the phase outside requests (init, init_worker)
local ffi = require "ffi"

local tonumber = tonumber
local ffi_cast = ffi.cast
-- sized for what the runloop and a few plugins store, so that filling it
-- never rehashes (a rehash per key added is most of an empty table's cost)
local table_new = require "table.new"

local ctx = {}

-- a unique sentinel: only identity matters
ctx.EXIT = setmetatable({}, { __tostring = function() return "tollgate.ctx.EXIT" end })

local shared_by_req = {}   -- address -> shared table
local plugin_by_req = {}   -- address -> { [plugin key] = table }
local current_by_req = {}  -- address -> the running plugin: { name =, id = }
local loader_phase = nil
local filler             -- ctx.set_filler

local function key_of(req)
  if req == nil then
    return nil
  end
  local t = type(req)
  if t == "number" then
    return req
  end
  return tonumber(ffi_cast("uintptr_t", req))
end
ctx.key_of = key_of

function ctx.get(req)
  local k = key_of(req)
  if not k then
    return nil
  end
  local t = shared_by_req[k]
  if not t then
    t = table_new(0, 8)
    shared_by_req[k] = t
    if filler then
      filler(t, k)
    end
  end
  return t
end

--- The request's shared table if something made it, else nil (no table is
-- made: most requests never need one).
function ctx.peek(req)
  local k = key_of(req)
  return k and shared_by_req[k]
end

--- fn(t, key) fills a request's shared table when it is made (the runloop:
-- the matched route and service, as Kong keeps them in ngx.ctx).
function ctx.set_filler(fn)
  filler = fn
end

function ctx.plugin(req, plugin_key)
  local k = key_of(req)
  if not k then
    return nil
  end
  local all = plugin_by_req[k]
  if not all then
    all = {}
    plugin_by_req[k] = all
  end
  local t = all[plugin_key]
  if not t then
    t = {}
    all[plugin_key] = t
  end
  return t
end

function ctx.clear(req)
  local k = key_of(req)
  if k then
    shared_by_req[k] = nil
    plugin_by_req[k] = nil
    current_by_req[k] = nil
  end
end

local loader_current = {}

--- The running plugin of a request: p is a table with its name and id (the
-- runloop's instance), kept as is.
function ctx.set_current(req, p)
  local k = key_of(req)
  if not k then
    loader_current = p
    return
  end
  current_by_req[k] = p
end

function ctx.set_current_plugin(req, name, id)
  ctx.set_current(req, { name = name, id = id })
end

function ctx.current_plugin(req)
  local k = key_of(req)
  local p
  if k then
    p = current_by_req[k]
  else
    p = loader_current
  end
  if p then
    return p.name, p.id
  end
end

--- The phase outside of a request ("init", "init_worker"), or nil.
function ctx.set_phase(name)
  loader_phase = name
end

function ctx.phase()
  return loader_phase
end

--- How many requests have state (for specs: nothing must leak).
function ctx.count()
  local n = 0
  for _ in pairs(shared_by_req) do n = n + 1 end
  for k in pairs(plugin_by_req) do
    if not shared_by_req[k] then n = n + 1 end
  end
  return n
end

return ctx
