-- kong.tools.queue: Kong 3.10's batching queue for log plugins, per worker.
--
--   local Queue = require "kong.tools.queue"
--   Queue.enqueue(queue_conf, handler, handler_conf, value)
--
-- Entries wait in a per-worker queue named queue_conf.name (per workspace);
-- a timer hands them to `handler(handler_conf, batch)` in batches of up to
-- max_batch_size, waiting up to max_coalescing_delay after the first entry
-- for more. A handler that does not return true is retried with exponential
-- back-off (initial_retry_delay doubling up to max_retry_delay) until
-- max_retry_time has passed, then the batch is dropped. A full queue
-- (max_entries, max_bytes) drops its oldest entries. concurrency_limit = -1
-- sends every entry on its own timer at once. Messages as Kong's.
local semaphore = require "ngx.semaphore"

local type, pairs, select, tostring, assert, pcall = type, pairs, select, tostring, assert,
                                                     pcall
local fmt = string.format
local min = math.min
local unpack = unpack or table.unpack

local CAPACITY_WARNING_THRESHOLD = 0.8
local COALESCE_POLL_TIME = 1.0 -- re-check for worker shutdown this often
local COALESCE_MIN_TIME = 0.05 -- less left than this: send now
local LEGACY_WARNING_INTERVAL = 60

local Queue = {}
local Queue_mt = { __index = Queue }

local queues = {} -- key -> queue, while its timer runs

local function workspace_id()
  local ok, ws = pcall(function() return ngx.ctx.workspace end)
  return ok and ws or ""
end

local function queue_key(name)
  return (workspace_id() or "") .. "." .. name
end

-- ---------------------------------------------------------------- logging --

function Queue:log(level_fn, message, ...)
  local text = "[" .. (self.log_tag or "") .. "] queue " .. self.name .. ": " .. message
  if select("#", ...) > 0 then
    text = fmt(text, ...)
  end
  return level_fn(text)
end

function Queue:log_trace(...) return self:log(kong.log.trace, ...) end
function Queue:log_debug(...) return self:log(kong.log.debug, ...) end
function Queue:log_info(...) return self:log(kong.log.info, ...) end
function Queue:log_warn(...) return self:log(kong.log.warn, ...) end
function Queue:log_err(...) return self:log(kong.log.err, ...) end

-- ---------------------------------------------------------------- capacity --

--- Entries waiting.
function Queue:count()
  return self.back - self.front
end

local function entry_bytes(entry)
  return type(entry) == "string" and #entry or 0
end

local function full(q)
  if q:count() >= q.max_entries then
    return true
  end
  return q.max_bytes ~= nil and q.bytes_queued >= q.max_bytes
end

local function too_large(q, entry)
  return q.max_bytes ~= nil and type(entry) == "string" and #entry > q.max_bytes
end

local function exceeds_bytes(q, entry)
  return q.max_bytes ~= nil and type(entry) == "string"
         and q.bytes_queued + #entry > q.max_bytes
end

local function fits(q, entry)
  return not full(q) and not too_large(q, entry) and q:count() + 1 <= q.max_entries
         and not exceeds_bytes(q, entry)
end

-- Removes the oldest entry (delivered or dropped).
local function pop_front(q)
  local entry = q.entries[q.front]
  if q.max_bytes then
    q.bytes_queued = q.bytes_queued - entry_bytes(entry)
  end
  q.entries[q.front] = nil
  q.front = q.front + 1
  if q.front == q.back then
    q.front, q.back = 1, 1
  end
  return entry
end

local function drop_oldest(q)
  q.semaphore:wait(0) -- the entry is no longer waiting
  pop_front(q)
  q.already_dropped_entries = true
end

-- ---------------------------------------------------------------- delivery --

-- Calls the handler until it returns true or max_retry_time has passed.
local function deliver(q, batch)
  local n = #batch
  local started = ngx.now()
  local attempt = 0
  while true do
    q:log_trace("passing %d entries to handler", n)
    local called, ok, err = pcall(q.handler, q.handler_conf, batch)
    if called and ok == true then
      q:log_trace("handler processed %d entries successfully", n)
      return
    end
    if not called then
      err = ok
    end
    q:log_warn("handler could not process entries: %s",
               tostring(err or "no error details returned by handler"))
    if not err then
      q:log_err("handler returned falsy value but no error information")
    end
    if ngx.now() - started > q.max_retry_time then
      q:log_err("could not send entries due to max_retry_time exceeded. %d queue entries "
                .. "were lost", n)
      return
    end
    ngx.sleep(min(q.max_retry_delay, 2 ^ attempt * q.initial_retry_delay))
    attempt = attempt + 1
  end
end

--- Takes one batch off the queue and delivers it (false when empty).
function Queue:process_once()
  local ok, err = self.semaphore:wait(0)
  if not ok then
    if err ~= "timeout" then
      self:log_err("error waiting for semaphore: %s", err)
    end
    return false
  end
  local first_at = ngx.now()
  local taken = 1
  while taken < self.max_batch_size do
    local left = self.max_coalescing_delay - (ngx.now() - first_at)
    if left < COALESCE_MIN_TIME then
      break
    end
    local wait = min(left, COALESCE_POLL_TIME)
    if ngx.worker.exiting() then
      -- shutting down: send what is there quickly
      self.max_coalescing_delay = COALESCE_MIN_TIME
      wait = COALESCE_MIN_TIME
    end
    ok, err = self.semaphore:wait(wait)
    if ok then
      taken = taken + 1
    elseif err ~= "timeout" then
      self:log_err("could not wait for semaphore: %s", err)
      break
    end
  end
  -- entries dropped for room meanwhile were taken off the front already
  taken = min(taken, self:count())
  if taken == 0 then
    return true
  end
  local batch = { unpack(self.entries, self.front, self.front + taken - 1) }
  for _ = 1, taken do
    pop_front(self)
  end
  if self.already_dropped_entries then
    self:log_info("queue resumed processing")
    self.already_dropped_entries = false
  end
  deliver(self, batch)
  return true
end

local function run_queue(premature, q)
  while q:count() > 0 do
    q:log_trace("processing queue")
    q:process_once()
  end
  q:log_trace("done processing queue")
  queues[q.key] = nil
end

local function get_or_create(queue_conf, handler, handler_conf)
  local key = queue_key(queue_conf.name)
  local q = queues[key]
  if q then
    q:log_trace("queue exists")
    q.handler_conf = handler_conf -- the newest configuration wins
    return q
  end
  q = {
    name = queue_conf.name,
    key = key,
    handler = handler,
    handler_conf = handler_conf,
    semaphore = semaphore.new(),
    bytes_queued = 0,
    entries = {},
    front = 1,
    back = 1,
  }
  for k, v in pairs(queue_conf) do
    q[k] = v
  end
  setmetatable(q, Queue_mt)
  if q.concurrency_limit == 1 then
    local ok, err = ngx.timer.at(0, run_queue, q)
    if not ok then
      q:log_err("could not start the queue timer: %s", tostring(err))
    else
      queues[key] = q
    end
  end
  q:log_trace("queue created")
  return q
end

local function enqueue(q, entry)
  if entry == nil then
    return nil, "entry must be a non-nil Lua value"
  end
  if q.concurrency_limit == -1 then
    local ok, err = ngx.timer.at(0, function(premature)
      if not premature then
        deliver(q, { entry })
      end
    end)
    if not ok then
      return nil, "failed to crete timer: " .. tostring(err)
    end
    return true
  end
  if q:count() >= q.max_entries * CAPACITY_WARNING_THRESHOLD then
    if not q.warned then
      q:log_warn("queue at %s%% capacity", CAPACITY_WARNING_THRESHOLD * 100)
      q.warned = true
    end
  else
    q.warned = nil
  end
  if q:count() >= q.max_entries then
    q:log_err("queue full, dropping old entries until processing is successful again")
    drop_oldest(q)
  end
  if too_large(q, entry) then
    local msg = fmt("string to be queued is longer (%d bytes) than the queue's max_bytes "
                    .. "(%d bytes)", #entry, q.max_bytes)
    q:log_err(msg)
    return nil, msg
  end
  if exceeds_bytes(q, entry) then
    local dropped = 0
    repeat
      drop_oldest(q)
      dropped = dropped + 1
    until not exceeds_bytes(q, entry)
    q:log_err("byte capacity exceeded, %d queue entries were dropped", dropped)
  end
  assert(fits(q, entry), "queue should not be full after dropping entries")
  if q.max_bytes then
    if type(entry) ~= "string" then
      q:log_err("queuing non-string entry to a queue that has queue.max_bytes set, capacity "
                .. "monitoring will not be correct")
    end
    q.bytes_queued = q.bytes_queued + entry_bytes(entry)
  end
  q.entries[q.back] = entry
  q.back = q.back + 1
  q.semaphore:post()
  return true
end

local function check_conf(queue_conf, handler, handler_conf)
  assert(type(queue_conf) == "table", "arg #1 (queue_conf) must be a table")
  assert(type(handler) == "function", "arg #2 (handler) must be a function")
  assert(handler_conf == nil or type(handler_conf) == "table",
         "arg #3 (handler_conf) must be a table or nil")
  assert(type(queue_conf.name) == "string", "arg #1 (queue_conf) must include a name")
  for _, field in ipairs { "max_batch_size", "max_coalescing_delay", "max_entries",
                           "max_retry_time", "initial_retry_delay", "max_retry_delay" } do
    assert(type(queue_conf[field]) == "number",
           "arg #1 (queue_conf) " .. field .. " must be a number")
  end
  local mb = type(queue_conf.max_bytes)
  assert(mb == "nil" or mb == "number", "arg #1 (queue_conf) max_bytes must be a number or nil")
  assert(type(queue_conf.concurrency_limit) == "number",
         "arg #1 (queue_conf) concurrency_limit must be a number")
end

--- ok, err = Queue.enqueue(queue_conf, handler, handler_conf, value)
function Queue.enqueue(queue_conf, handler, handler_conf, value)
  check_conf(queue_conf, handler, handler_conf)
  return enqueue(get_or_create(queue_conf, handler, handler_conf), value)
end

--- Whether a queue of that name has a running timer.
function Queue.exists(name)
  return queues[queue_key(name)] ~= nil
end

--- Whether the named queue is full (a queue not created yet is not).
function Queue.is_full(queue_conf)
  local q = queues[queue_key(queue_conf.name)]
  return q ~= nil and full(q)
end

--- Whether `entry` would be queued without dropping anything (a queue not
-- created yet can take it).
function Queue.can_enqueue(queue_conf, entry)
  local q = queues[queue_key(queue_conf.name)]
  if not q then
    return true
  end
  return fits(q, entry)
end

--- For specs: whether the named queue still holds entries.
function Queue._exists(name)
  local q = queues[queue_key(name)]
  return q ~= nil and q:count() > 0
end

Queue._CAPACITY_WARNING_THRESHOLD = CAPACITY_WARNING_THRESHOLD

local legacy_warned = {}

local function warn_legacy(name, message)
  local key = name .. "/" .. message
  local now = ngx.now()
  if now - (legacy_warned[key] or 0) >= LEGACY_WARNING_INTERVAL then
    kong.log.warn(message)
    legacy_warned[key] = now
  end
end

local LEGACY = {
  -- field, default, queue field, message
  { "queue_size", 1, "max_batch_size", "the queue_size parameter is deprecated, please update "
    .. "your configuration to use queue.max_batch_size instead" },
  { "flush_timeout", 2, "max_coalescing_delay", "the flush_timeout parameter is deprecated, "
    .. "please update your configuration to use queue.max_coalescing_delay instead" },
  { "batch_span_count", 200, "max_batch_size", "the batch_span_count parameter is deprecated, "
    .. "please update your configuration to use queue.max_batch_size instead" },
  { "batch_flush_delay", 3, "max_coalescing_delay", "the batch_flush_delay parameter is "
    .. "deprecated, please update your configuration to use queue.max_coalescing_delay "
    .. "instead" },
}

--- The queue parameters of a plugin's configuration (config.queue), with
-- the legacy parameters (queue_size, flush_timeout, ...) mapped as Kong does.
function Queue.get_plugin_params(plugin_name, config, queue_name)
  local qc = config.queue or {}
  local tag = plugin_name .. " plugin " .. tostring(kong.plugin.get_id())
  if config.plugin_instance_name then
    tag = tag .. " (" .. config.plugin_instance_name .. ")"
  end
  qc.log_tag = tag
  if not qc.name then
    qc.name = queue_name or kong.plugin.get_id()
  end
  local null = ngx.null
  if (config.retry_count or null) ~= null and config.retry_count ~= 10 then
    warn_legacy(qc.name, "the retry_count parameter no longer works, please update your "
                .. "configuration to use initial_retry_delay and max_retry_time instead")
  end
  for _, l in ipairs(LEGACY) do
    local v = config[l[1]]
    if (v or null) ~= null and v ~= l[2] then
      qc[l[3]] = v
      warn_legacy(qc.name, l[4])
    end
  end
  return qc
end

return Queue
