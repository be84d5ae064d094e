--- kong.node.get_memory_stats and what feeds it: each worker records its Lua
-- VM's size in ngx.shared.kong under "kong:mem:<pid>" (Kong's key; the pid
-- is the worker thread's id, ngx.worker.pid()), when it starts and every
-- LUA_MEM_SAMPLE_RATE seconds after, from a timer rather than per request.
-- @module kong.pdk.node
local bytes_to_str = require("kong.tools.string").bytes_to_str

local floor = math.floor
local lower = string.lower
local match = string.match
local pairs = pairs
local pcall = pcall
local tonumber = tonumber
local type = type

local M = {}

local LUA_MEM_SAMPLE_RATE = 10 -- seconds, as Kong

local function kong_shm()
  return ngx and ngx.shared and ngx.shared.kong
end

--- Records this worker's Lua VM size (KiB, as collectgarbage("count")).
function M.record_lua_mem()
  local shm = kong_shm()
  if not shm then
    return nil, "no shared dict 'kong'"
  end
  return shm:safe_set("kong:mem:" .. ngx.worker.pid(), collectgarbage("count"))
end

--- Records now and then every LUA_MEM_SAMPLE_RATE seconds (init_worker).
function M.start_recording()
  M.record_lua_mem()
  ngx.timer.every(LUA_MEM_SAMPLE_RATE, function(premature)
    if not premature then
      M.record_lua_mem()
    end
  end)
end

local function convert(bytes, unit, scale)
  if not unit or lower(unit) == "b" then
    return floor(bytes)
  end
  return bytes_to_str(bytes, unit, scale)
end

local function by_pid(a, b)
  return (a.pid or 0) < (b.pid or 0)
end

--- Kong's kong.node.get_memory_stats([unit [, scale]]).
function M.get_memory_stats(unit, scale)
  unit = unit or "b"
  scale = scale or 2
  local ok, err = pcall(bytes_to_str, 0, unit, scale)
  if not ok then
    error(err, 2)
  end

  local res = { workers_lua_vms = {}, lua_shared_dicts = {} }
  local shm = kong_shm()
  if shm then
    local keys = shm:get_keys(0)
    for i = 1, #keys do
      local pid = match(keys[i], "^kong:mem:(%d+)$")
      if pid then
        local w = { pid = tonumber(pid) }
        local count = shm:get(keys[i])
        if type(count) ~= "number" then
          w.err = "could not get worker's HTTP Lua VM memory (pid: " .. pid ..
                  "): reported value is corrupted"
        else
          w.http_allocated_gc = convert(count * 1024, unit, scale)
        end
        res.workers_lua_vms[#res.workers_lua_vms + 1] = w
      end
    end
    table.sort(res.workers_lua_vms, by_pid)
  end

  for name, m in pairs(require("tollgate.shdict").stats()) do
    res.lua_shared_dicts[name] = {
      capacity = convert(m.capacity, unit, scale),
      allocated_slabs = convert(m.used, unit, scale),
    }
  end
  return res
end

return M
