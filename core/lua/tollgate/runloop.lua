-- tollgate.runloop: the worker side of the plugin host.
--
-- The core (core/plugins.c) calls, on each worker's own lua_State:
--   runloop.init(configuration, worker_id, worker_count)  once, at start
--   runloop.configure(json)                                once per snapshot
--   runloop.phase_mask(route_pos)                          per snapshot and route
--   runloop.execute(phase_bit, route_pos, first, key)      per request phase,
--     in the request's coroutine (phase_bit: the bit number of its
--     TG_PHASE_* bit; its exdata is the request; key: its
--     address as a number, tollgate.ctx's key, so no FFI cast per phase; the
--     core has set the phase for the PDK's checks)
-- Plugins run in Kong's order (PRIORITY descending, then name descending) with
-- Kong's precedence of scoped configurations. kong.response.exit yields the
-- request's coroutine (tollgate.ctx.EXIT): the handler ends on the spot.

local cjson = require "cjson.safe"
local ffi = require "ffi"
local sched = require "tollgate.sched"

local get_request = require "thread.exdata"
local traceback = debug.traceback
local ipairs = ipairs
local pairs = pairs
local tostring = tostring

ffi.cdef [[
  typedef struct tg_conn_s tg_req_t;
  void tg_pdk_log(int level, const char *msg, size_t len);
  int tg_pdk_upreq_enable_buffering(tg_req_t *r);
]]
local C = ffi.C

local LOG_ERR = 4
local bit_or = require("bit").bor

local runloop = {}

local ctx            -- tollgate.ctx
local loaded         -- tollgate.plugins.load() result
local by_position    -- route position -> { plugins for that route, sorted }
local globals        -- plugins that apply to every request (no route/service/consumer)
local consumer_scoped -- name -> list of instances with a consumer
local routes, services
local service_by_id

-- Per request (keyed as tollgate.ctx keys it), kept out of the plugins'
-- shared table so that a request whose plugins never ask for it makes none:
-- the matched route's position, and the plugin list access resolved when an
-- authenticated consumer changed it (else the route's list stands).
local route_pos = {}
local resolved = {}

local function fill_shared(t, key)
  local pos = route_pos[key]
  local route = pos and routes[pos]
  if route then
    t.route = route
    t.service = service_by_id[type(route.service) == "table" and route.service.id or ""]
  end
end

local function forget(key)
  ctx.clear(key)
  route_pos[key] = nil
  resolved[key] = nil
end

-- phase names -> the TG_PHASE_* bits of core/pdk.h
local PHASE_BITS = {
  certificate = 2, rewrite = 4, access = 8, response = 16, header_filter = 64, body_filter = 128,
  log = 256,
}

-- what runloop.execute gets: the bit number of the phase's TG_PHASE_* bit
local PHASE_NAMES = {}
for name, b in pairs(PHASE_BITS) do
  PHASE_NAMES[math.floor(math.log(b) / math.log(2) + 0.5)] = name
end

local function log_err(msg)
  msg = tostring(msg)
  C.tg_pdk_log(LOG_ERR, msg, #msg)
end

--- Called once per worker, before any request.
-- Returns true, or true, "none" when no plugin is enabled (the core then
-- drops this lua_State: requests never enter Lua), or nil, err.
function runloop.init(configuration, worker_id, worker_count)
  local ok, plugins = pcall(require, "tollgate.plugins")
  if not ok then
    -- without the loader only "bundled" (none bundled yet) and "off" work
    for _, name in ipairs(configuration.plugins or {}) do
      if name ~= "bundled" and name ~= "off" then
        return nil, plugins
      end
    end
    return true, "none"
  end
  local names = plugins.expand(configuration.plugins)
  if #names == 0 then
    return true, "none"
  end
  ctx = require "tollgate.ctx"
  ctx.set_filler(fill_shared)
  local ok_shim, shim = pcall(require, "tollgate.ngx_shim")
  if ok_shim and type(shim) == "table" and shim.install then
    shim.install()
  end
  _G.kong = require("kong.pdk").new(configuration)
  local err
  loaded, err = plugins.load(names)
  if not loaded then
    return nil, err
  end
  if worker_id < 0 then
    return true -- a check (start, config parse): plugins loaded, no init_worker
  end
  -- kong.node.get_memory_stats reads what each worker records
  local ok_node, node = pcall(require, "kong.pdk.node")
  if ok_node then
    node.start_recording()
  end
  ctx.set_phase("init_worker")
  for _, p in ipairs(loaded.sorted) do
    if p.handler.init_worker then
      ctx.set_current_plugin(nil, p.name, nil) -- kong.log's [plugin] prefix
      local ok, e = xpcall(p.handler.init_worker, traceback, p.handler)
      if not ok then
        log_err("[" .. p.name .. "] init_worker failed: " .. tostring(e))
      end
    end
  end
  ctx.set_phase(nil)
  return true
end

-- Kong's precedence for instances without a consumer: route+service, route,
-- service, global.
local function scope_rank(p)
  local r, s = p.route ~= nil and p.route ~= cjson.null, p.service ~= nil and p.service ~= cjson.null
  if r and s then return 4 end
  if r then return 3 end
  if s then return 2 end
  return 1
end

-- Handlers see a config without nulls, as Kong's plugins iterator gives it
-- (`if conf.x then` must not see cjson.null).
local null = cjson.null
local function without_nulls(t)
  if type(t) ~= "table" then
    return t
  end
  for k, v in pairs(t) do
    if v == null then
      t[k] = nil
    elseif type(v) == "table" then
      without_nulls(v)
    end
  end
  return t
end

local function id_of(ref)
  return type(ref) == "table" and ref.id or nil
end

local function sort_instances(list)
  table.sort(list, function(a, b)
    if a.priority ~= b.priority then
      return a.priority > b.priority
    end
    return a.name > b.name
  end)
  return list
end

-- The fields Kong's plugins iterator adds to each instance's config, which
-- plugins read: the ids of its scope, its id and instance name, and
-- __key__/__seq__ (its cache key, and a sequence number unique across the
-- workers, from ngx.shared.kong as Kong's).
local function decorate(conf, p)
  local route, service, consumer = id_of(p.route), id_of(p.service), id_of(p.consumer)
  local ws = type(p.ws_id) == "string" and p.ws_id or ""
  conf.route_id, conf.service_id, conf.consumer_id = route, service, consumer
  conf.plugin_instance_name = type(p.instance_name) == "string" and p.instance_name or nil
  conf.__plugin_id = p.id
  conf.__ws_id = ws ~= "" and ws or nil
  conf.__key__ = "plugins:" .. p.name .. ":" .. (route or "") .. ":" .. (service or "") .. ":" ..
                 (consumer or "") .. "::" .. ws
  local shm = ngx and ngx.shared and ngx.shared.kong
  conf.__seq__ = shm and shm:incr("plugins_iterator:__seq__", 1, 0, 0) or 0
end

local configured_once = false

--- Called once per snapshot with the JSON of tollgate.snapshot_json.
function runloop.configure(json)
  local cfg, err = cjson.decode(json)
  if not cfg then
    return nil, "invalid snapshot: " .. tostring(err)
  end
  routes = cfg.routes or {}
  services = cfg.services or {}
  service_by_id = {}
  for _, s in ipairs(services) do
    service_by_id[s.id] = s
  end

  -- per plugin name: the best instance for (route id, service id), no consumer
  local by_route, by_service, by_route_service, global_by_name = {}, {}, {}, {}
  consumer_scoped = {}
  local configs_by_name = {}
  for _, p in ipairs(cfg.plugins or {}) do
    local plugin = loaded.by_name and loaded.by_name[p.name] or loaded[p.name]
    if plugin then
      local conf = without_nulls(p.config)
      decorate(conf, p)
      local inst = { name = p.name, id = p.id, conf = conf,
                     handler = plugin.handler,
                     priority = plugin.priority, route = id_of(p.route),
                     service = id_of(p.service), consumer = id_of(p.consumer) }
      configs_by_name[p.name] = configs_by_name[p.name] or {}
      local cfgs = configs_by_name[p.name]
      cfgs[#cfgs + 1] = p.config
      if inst.consumer then
        local l = consumer_scoped[p.name] or {}
        l[#l + 1] = inst
        consumer_scoped[p.name] = l
      elseif inst.route and inst.service then
        by_route_service[inst.route .. ":" .. inst.service .. ":" .. p.name] = inst
      elseif inst.route then
        by_route[inst.route .. ":" .. p.name] = inst
      elseif inst.service then
        by_service[inst.service .. ":" .. p.name] = inst
      else
        global_by_name[p.name] = inst
      end
    else
      log_err("plugin '" .. tostring(p.name) .. "' is configured but not loaded")
    end
  end

  globals = {}
  for _, inst in pairs(global_by_name) do
    globals[#globals + 1] = inst
  end
  sort_instances(globals)

  by_position = {}
  for pos, r in ipairs(routes) do
    local rid, sid = r.id, id_of(r.service)
    local list = {}
    for _, p in ipairs(loaded.sorted) do
      local n = p.name
      local inst = (sid and by_route_service[rid .. ":" .. sid .. ":" .. n])
                   or by_route[rid .. ":" .. n]
                   or (sid and by_service[sid .. ":" .. n])
                   or global_by_name[n]
      if inst then
        list[#list + 1] = inst
      end
    end
    by_position[pos] = list
  end

  if configured_once and kong.cache then
    -- a new configuration: flush the node caches, as Kong's reconfigure does
    kong.core_cache:purge(true)
    kong.cache:purge(true)
  end
  configured_once = true

  for _, p in ipairs(loaded.sorted) do
    if p.handler.configure then
      ctx.set_current_plugin(nil, p.name, nil)
      local ok, e = xpcall(p.handler.configure, traceback, p.handler, configs_by_name[p.name])
      if not ok then
        log_err("[" .. p.name .. "] configure failed: " .. tostring(e))
      end
    end
  end
  return true
end

-- Adds the TG_PHASE_* bits of the phases a handler implements to mask.
local function handler_bits(mask, handler)
  for name, b in pairs(PHASE_BITS) do
    if handler[name] then
      mask = bit_or(mask, b)
    end
  end
  if handler.response then
    mask = bit_or(mask, PHASE_BITS.access) -- access decides buffered proxying
  end
  return mask
end

--- The TG_PHASE_* bits some plugin implements for a route position (0:
-- before routing: the global plugins), so the core enters Lua only for those.
function runloop.phase_mask(pos)
  local list = pos == 0 and globals or by_position[pos] or {}
  local mask = 0
  for _, inst in ipairs(list) do
    mask = handler_bits(mask, inst.handler)
  end
  if mask ~= 0 and pos ~= 0 then
    -- consumer-scoped instances join once a plugin of the route authenticates
    for _, insts in pairs(consumer_scoped) do
      mask = handler_bits(mask, insts[1].handler)
    end
  end
  return mask
end

-- With an authenticated consumer: the consumer-scoped instance wins for its
-- plugin name (route+service+consumer, route+consumer, service+consumer,
-- consumer), else the one resolved without consumer.
local function with_consumer(list, pos, consumer_id)
  if not consumer_id or next(consumer_scoped) == nil then
    return list
  end
  local r = routes[pos]
  local rid, sid = r and r.id, r and id_of(r.service)
  local out, seen = {}, {}
  for name, insts in pairs(consumer_scoped) do
    local best, rank = nil, 0
    for _, inst in ipairs(insts) do
      if inst.consumer == consumer_id then
        local k
        if inst.route and inst.service then
          k = (inst.route == rid and inst.service == sid) and 4
        elseif inst.route then
          k = inst.route == rid and 3
        elseif inst.service then
          k = inst.service == sid and 2
        else
          k = 1
        end
        if k and k > rank then best, rank = inst, k end
      end
    end
    if best then
      out[#out + 1] = best
      seen[name] = true
    end
  end
  for _, inst in ipairs(list) do
    if not seen[inst.name] then
      out[#out + 1] = inst
    end
  end
  return sort_instances(out)
end

-- list -> whether a handler of it has a response phase (buffered proxying),
-- found once per list rather than per request
local buffered_lists = setmetatable({}, { __mode = "k" })
local function wants_buffering(list)
  local b = buffered_lists[list]
  if b == nil then
    b = false
    for k = 1, #list do
      if list[k].handler.response then
        b = true
        break
      end
    end
    buffered_lists[list] = b
  end
  return b
end

-- A handler runs directly in the request's coroutine: kong.response.exit
-- yields tollgate.ctx.EXIT through the xpcall (LuaJIT yields across it)
-- straight to the core, which ends the phase there. No coroutine per handler.
local function run_handler(key, inst, phase)
  local fn = inst.handler[phase]
  if not fn then
    return true
  end
  ctx.set_current(key, inst)
  local ok, err = xpcall(fn, traceback, inst.handler, inst.conf)
  if not ok then
    log_err("[" .. inst.name .. "] " .. phase .. " failed: " .. tostring(err))
    return nil, "error"
  end
  return true
end

-- Runs current[i] and those after it; returns the list that ran (access
-- re-resolves the rest once a plugin authenticates a consumer), or nil when a
-- handler failed. A tail call per plugin rather than a loop: a loop of one or
-- two turns per request is one LuaJIT does not compile, a tail call it does.
local function run_from(phase, pos, key, list, current, i, consumer_id)
  local inst = current[i]
  if inst == nil then
    return current
  end
  if not run_handler(key, inst, phase) then
    return nil
  end
  if phase == "access" then
    local shared = ctx.peek(key)
    local c = shared and shared.authenticated_consumer
    local cid = type(c) == "table" and c.id or nil
    if cid and cid ~= consumer_id then
      consumer_id = cid
      -- the plugins after this one, resolved again with the consumer
      local rest = with_consumer(list, pos, cid)
      local done = {}
      for k = 1, i do done[current[k].name] = true end
      local nxt = {}
      for _, p in ipairs(current) do if done[p.name] then nxt[#nxt + 1] = p end end
      for _, p in ipairs(rest) do if not done[p.name] then nxt[#nxt + 1] = p end end
      current = nxt
      -- the later phases run what access resolved, even when a plugin
      -- after this one ends the phase with kong.response.exit
      resolved[key] = current
    end
  end
  return run_from(phase, pos, key, list, current, i + 1, consumer_id)
end

-- The phase's plugins (runloop.execute). A function of its own so that the
-- JIT compiles it from its entry: the C call in forget_children ends the
-- trace that execute starts.
local function run_phase(phase, pos, key)
  local list
  if phase == "rewrite" or phase == "certificate" then
    list = globals
  elseif phase == "access" then
    list = by_position[pos] or globals
    if pos > 0 then
      -- kong.router and the Kong fields plugins read from ngx.ctx: put in
      -- the table when something makes it (ctx's filler), or now if made
      route_pos[key] = pos
      local shared = ctx.peek(key)
      if shared then
        fill_shared(shared, key)
      end
    end
  else
    list = resolved[key] or by_position[pos] or globals
  end
  local current = run_from(phase, pos, key, list, list, 1, nil)
  if not current then
    return 500
  end
  if phase == "access" or phase == "rewrite" or phase == "response" then
    -- as OpenResty: the phase ends once the light threads it spawned ended
    sched.join_children(key)
  end
  if phase == "access" then
    -- a plugin with a response phase: buffered proxying (Kong's
    -- ctx.buffered_proxying)
    if wants_buffering(current) then
      C.tg_pdk_upreq_enable_buffering(get_request())
    end
  elseif phase == "log" then
    forget(key)
  end
  return 0
end

--- Runs one phase for the current request. Returns 0, or 500 when a plugin
-- raised an error (the core answers it).
function runloop.execute(phase_bit, pos, first, key)
  local phase = PHASE_NAMES[phase_bit]
  if first then
    forget(key) -- a new request on this connection's address
    sched.forget_children(key)
  end
  return run_phase(phase, pos, key)
end

return runloop
