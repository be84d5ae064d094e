-- tollgate.sched: the non-blocking part of `ngx` on the worker's event loop
-- (core/lthread.c): ngx.sleep, ngx.timer.*, ngx.thread.*, ngx.semaphore,
-- ngx.worker.exiting; ngx.socket comes from tollgate.ngx_socket.
--
-- A coroutine parks by yielding a wait of tollgate.c.sched (sched.park);
-- coroutine.resume/wrap pass such yields on to the top coroutine
-- (tollgate.ngx_shim.patch_coroutines), which the core resumes with the
-- wait's result ("ok", "timeout" or "premature").
local C = require "tollgate.c.sched"

local co_create = coroutine.create
local co_status = coroutine.status
local co_yield = coroutine.yield
local co_running = coroutine.running
local new_wait = C.new_wait
local is_wait = C.is_wait
local type = type
local select = select
local error = error
local pcall = pcall
local tostring = tostring
local unpack = unpack
local traceback = debug.traceback

local sched = { is_wait = is_wait }

local function base()
  return require "kong.pdk.private.base"
end

-- OpenResty's names of the contexts where yielding APIs are disabled
local DISABLED = {
  init = "init_by_lua*", init_worker = "init_worker_by_lua*",
  header_filter = "header_filter_by_lua*", body_filter = "body_filter_by_lua*",
  log = "log_by_lua*", balancer = "balancer_by_lua*",
}

--- Raises OpenResty's "API disabled in the context of ..." unless the
-- current context may yield (certificate, rewrite, access, response, timers, light
-- threads, `tollgate lua`).
function sched.check_yieldable(level)
  local ok, b = pcall(base)
  local phase = ok and b.phase_name() or nil
  local what = phase and DISABLED[phase]
  if what then
    error("API disabled in the context of " .. what, (level or 1) + 1)
  end
  local _, main = co_running()
  if main then
    error("API disabled in the current context (not in a coroutine)", (level or 1) + 1)
  end
end

--- Parks the running coroutine on `w`; returns the wait's result.
function sched.park(w)
  return co_yield(w)
end
local park = sched.park

function sched.sleep(s)
  if type(s) ~= "number" or s < 0 then
    error("bad argument #1 to 'sleep' (number expected)", 2)
  end
  sched.check_yieldable(2)
  park(new_wait():timer(s * 1000))
end

-- ------------------------------------------------------------- timers --

local pending, running = 0, 0
local MAX_PENDING, MAX_RUNNING = 1024, 256

local function finish_timer(ok, err)
  running = running - 1
  if not ok then
    error(err, 0) -- the core logs "lua entry thread aborted: runtime error: ..."
  end
end

local function run_timer(premature, fn, ...)
  running = running + 1
  return finish_timer(xpcall(fn, traceback, premature, ...))
end

local function timer_at_body(delay, fn, ...)
  local res = park(new_wait():timer(delay * 1000, true))
  pending = pending - 1
  return run_timer(res == "premature", fn, ...)
end

local function timer_every_body(delay, fn, ...)
  while true do
    local res = park(new_wait():timer(delay * 1000, true))
    pending = pending - 1
    local premature = res == "premature"
    run_timer(premature, fn, ...)
    if premature or C.exiting() then
      return
    end
    pending = pending + 1
  end
end

local function check_timer_args(name, delay, fn)
  if type(delay) ~= "number" then
    error("bad argument #1 to '" .. name .. "' (number expected, got " .. type(delay) .. ")", 3)
  end
  if delay < 0 then
    error("bad argument #1 to '" .. name .. "' (delay must not be negative)", 3)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to '" .. name .. "' (Lua function expected)", 3)
  end
  local ok, b = pcall(base)
  local phase = ok and b.phase_name() or nil
  if phase == "init" then
    error("API disabled in the context of init_by_lua*", 3)
  end
end

local timer = {}

function timer.at(delay, fn, ...)
  check_timer_args("at", delay, fn)
  if C.exiting() and delay > 0 then
    return nil, "process exiting"
  end
  if pending >= MAX_PENDING then
    return nil, "too many pending timers"
  end
  if running >= MAX_RUNNING then
    return nil, "too many running timers"
  end
  pending = pending + 1
  C.spawn(timer_at_body, delay, fn, ...)
  return true
end

function timer.every(delay, fn, ...)
  check_timer_args("every", delay, fn)
  if delay <= 0 then
    error("bad argument #1 to 'every' (delay must be greater than 0)", 2)
  end
  if C.exiting() then
    return nil, "process exiting"
  end
  if pending >= MAX_PENDING then
    return nil, "too many pending timers"
  end
  pending = pending + 1
  C.spawn(timer_every_body, delay, fn, ...)
  return true
end

function timer.running_count()
  return running
end

function timer.pending_count()
  return pending
end

sched.timer = timer

-- ------------------------------------------------------- light threads --

local threads = setmetatable({}, { __mode = "k" }) -- coroutine -> record

local function log_thread_error(err)
  local ok, b = pcall(base)
  local msg = "lua user thread aborted: runtime error: " .. tostring(err)
  if ok then
    b.C.tg_pdk_log(4, msg, #msg)
  end
end

local function thread_body(rec, fn, ...)
  local res = { xpcall(fn, traceback, ...) }
  res.n = table.maxn(res)
  rec.res = res
  rec.done = true
  if not res[1] then
    log_thread_error(res[2])
  end
  for i = 1, #rec.waiters do
    rec.waiters[i]:wake()
  end
end

local function adopt_if_parked(co, ok, first, ...)
  if ok and co_status(co) == "suspended" then
    if is_wait(first) and select("#", ...) == 0 then
      C.adopt(co, first)
    else
      -- a plain yield of a light thread: it goes on at the next loop turn
      C.adopt(co, new_wait():timer(0))
    end
  end
end

local thread = {}

-- request key -> records of the light threads it spawned (join_children)
local children = {}

local ctx_mod -- tollgate.ctx, required on first use and kept
local function key_of(r)
  ctx_mod = ctx_mod or require("tollgate.ctx")
  return ctx_mod.key_of(r)
end

local function request_key()
  local ok, b = pcall(base)
  local r = ok and b.get_req() or nil
  if r == nil then
    return nil
  end
  return key_of(r)
end

function thread.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  sched.check_yieldable(2)
  local rec = { waiters = {}, parent = co_running() }
  local co = co_create(thread_body)
  threads[co] = rec
  local key = request_key()
  if key then
    local l = children[key]
    if not l then
      l = {}
      children[key] = l
    end
    l[#l + 1] = rec
  end
  local raw_resume = require("tollgate.ngx_shim").raw_resume or coroutine.resume
  adopt_if_parked(co, raw_resume(co, rec, fn, ...))
  return co
end

local function reap(rec)
  rec.reaped = true
  local res = rec.res
  if not res[1] then
    return false, res[2]
  end
  return unpack(res, 1, res.n)
end

function thread.wait(...)
  local n = select("#", ...)
  if n == 0 then
    error("at least one coroutine should be specified", 2)
  end
  sched.check_yieldable(2)
  local me = co_running()
  for i = 1, n do
    local t = select(i, ...)
    local rec = threads[t]
    if not rec then
      error("bad argument #" .. i .. " to 'wait' (not a user thread)", 2)
    end
    if rec.parent ~= me then
      return nil, "only the parent coroutine can wait on the thread"
    end
    if rec.reaped or rec.killed then
      return nil, "already waited or killed"
    end
  end
  while true do
    for i = 1, n do
      local rec = threads[select(i, ...)]
      if rec.done and not rec.reaped then
        return reap(rec)
      end
    end
    local w = new_wait():manual()
    for i = 1, n do
      local l = threads[select(i, ...)].waiters
      l[#l + 1] = w
    end
    park(w)
    for i = 1, n do
      local l = threads[select(i, ...)].waiters
      for k = #l, 1, -1 do
        if l[k] == w then table.remove(l, k) end
      end
    end
  end
end

function thread.kill(t)
  local rec = threads[t]
  if not rec then
    error("bad argument #1 to 'kill' (not a user thread)", 2)
  end
  if rec.parent ~= co_running() then
    return nil, "not user thread"
  end
  if rec.done or rec.killed then
    return nil, "already waited or killed"
  end
  rec.killed = true
  C.kill(t)
  return true
end

sched.thread = thread

--- Parks until every light thread the request spawned has ended (the end of
-- rewrite and access).
function sched.join_children(req)
  if next(children) == nil then
    return
  end
  local key = key_of(req)
  local list = key and children[key]
  if not list then
    return
  end
  children[key] = nil
  for i = 1, #list do
    local rec = list[i]
    while not rec.done and not rec.killed do
      local w = new_wait():manual()
      rec.waiters[#rec.waiters + 1] = w
      park(w)
      for k = #rec.waiters, 1, -1 do
        if rec.waiters[k] == w then table.remove(rec.waiters, k) end
      end
    end
  end
end

--- Forgets a request's light threads (the core killed them: the request ended).
function sched.forget_children(req)
  if next(children) == nil then
    return
  end
  local key = key_of(req)
  if key then
    children[key] = nil
  end
end

-- ---------------------------------------------------------- semaphore --

local semaphore = {}
local sema_mt = { __index = semaphore }

function semaphore.new(n)
  n = n or 0
  if type(n) ~= "number" or n < 0 then
    return nil, "no memory"
  end
  return setmetatable({ n = n, waiters = {} }, sema_mt)
end

function semaphore:post(n)
  n = n or 1
  local waiters = self.waiters
  while n > 0 and #waiters > 0 do
    local w = table.remove(waiters, 1)
    w.granted = true
    w.wait:wake()
    n = n - 1
  end
  self.n = self.n + n
  return true
end

function semaphore:wait(timeout)
  if type(timeout) ~= "number" or timeout < 0 then
    error("bad argument #1 to 'wait' (number expected)", 2)
  end
  if self.n > 0 and #self.waiters == 0 then
    self.n = self.n - 1
    return true
  end
  if timeout == 0 then
    return nil, "timeout"
  end
  sched.check_yieldable(2)
  local rec = { wait = new_wait():manual(timeout * 1000) }
  local waiters = self.waiters
  waiters[#waiters + 1] = rec
  park(rec.wait)
  if rec.granted then
    return true
  end
  for k = #waiters, 1, -1 do
    if waiters[k] == rec then table.remove(waiters, k) end
  end
  return nil, "timeout"
end

function semaphore:count()
  return self.n - #self.waiters
end

sched.semaphore = semaphore

--- Puts the facilities into an `ngx` table.
function sched.install(ngx)
  ngx.sleep = sched.sleep
  ngx.timer = timer
  ngx.thread = thread
  ngx.worker = ngx.worker or {}
  ngx.worker.exiting = C.exiting
  ngx.socket = require("tollgate.ngx_socket")
  return ngx
end

return sched
