-- kong.tools.queue: a log plugin written as Kong's (sd-queue-log) delivering
-- batches to a local HTTP sink through the real binary; the queue's rules
-- (batching, retries, capacity, Kong's messages) run under `tollgate busted`'s
-- event loop.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"
local SINK_PORT = helpers.test_conf.proxy_port + 20
local SINK = "http://127.0.0.1:" .. SINK_PORT

local function get(path, headers)
  local client = helpers.proxy_client()
  local res = assert(client:get(path, { headers = headers }))
  res:read_body()
  client:close()
  return res.status
end

-- the sink's batches (each a decoded JSON array), optionally only those whose
-- entries' paths start with `prefix`
local function batches(prefix)
  local client = helpers.http_client("127.0.0.1", SINK_PORT)
  local res = assert(client:get("/batches"))
  local body = res:read_body()
  client:close()
  local out = {}
  for _, b in ipairs(cjson.decode(body)) do
    local batch = cjson.decode(b)
    if not prefix or batch[1].path:sub(1, #prefix) == prefix then
      out[#out + 1] = batch
    end
  end
  return out
end

describe("a kong.tools.queue log plugin", function()
  local sink_pid

  lazy_setup(function()
    local pidfile = os.tmpname()
    os.execute(helpers.shell_quote(helpers.bin_path) .. " lua " .. helpers.root
               .. "/spec/fixtures/sink_server.lua " .. SINK_PORT .. " >/dev/null 2>&1 & echo $! > "
               .. pidfile)
    local f = assert(io.open(pidfile))
    sink_pid = f:read("*l")
    f:close()
    os.remove(pidfile)
    helpers.wait_until(function() return helpers.can_connect("127.0.0.1", SINK_PORT) end, 10)

    local bp = helpers.get_db_utils("off", nil, { "sd-queue-log" })
    local s = bp.services:insert { name = "s1" }
    local function route(path, endpoint, queue)
      bp.plugins:insert { name = "sd-queue-log",
                          route = bp.routes:insert { service = s, paths = { path },
                                                     strip_path = false },
                          config = { http_endpoint = SINK .. endpoint, queue = queue } }
    end
    route("/batched", "/batched", { max_batch_size = 5, max_coalescing_delay = 3600 })
    route("/single", "/single", { max_batch_size = 1 })
    route("/retry", "/retry?fail=2", { max_batch_size = 1, initial_retry_delay = 0.01 })
    route("/giveup", "/giveup?fail=1000000", { max_batch_size = 1, initial_retry_delay = 0.01,
                                               max_retry_delay = 0.02, max_retry_time = 0.2 })
    route("/unlimited", "/unlimited", { concurrency_limit = -1 })
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,sd-queue-log",
      lua_package_path = PLUGINS_PATH,
      nginx_worker_processes = 1,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if sink_pid then
      os.execute("kill " .. sink_pid)
    end
  end)

  it("delivers batches of max_batch_size", function()
    for i = 1, 10 do
      assert.equal(200, get("/batched/" .. i))
    end
    helpers.wait_until(function() return #batches("/batched") == 2 end, 20)
    local got = batches("/batched")
    assert.equal(5, #got[1])
    assert.equal(5, #got[2])
    for i = 1, 10 do
      local e = got[math.floor((i - 1) / 5) + 1][(i - 1) % 5 + 1]
      assert.equal("/batched/" .. i, e.path)
      assert.equal(200, e.status)
    end
  end)

  it("sends each entry alone with max_batch_size 1 and with concurrency_limit -1", function()
    for i = 1, 3 do
      assert.equal(200, get("/single/" .. i, { ["X-Tag"] = "t" .. i }))
      assert.equal(200, get("/unlimited/" .. i))
    end
    helpers.wait_until(function()
      return #batches("/single") == 3 and #batches("/unlimited") == 3
    end, 20)
    for i, b in ipairs(batches("/single")) do
      assert.same({ { path = "/single/" .. i, status = 200, tag = "t" .. i } }, b)
    end
  end)

  it("retries a failing batch until the handler succeeds", function()
    assert.equal(200, get("/retry/1"))
    helpers.wait_until(function() return #batches("/retry") == 1 end, 20)
    assert.equal("/retry/1", batches("/retry")[1][1].path)
  end)

  it("drops a batch after max_retry_time with Kong's message", function()
    assert.equal(200, get("/giveup/1"))
    local log = helpers.test_conf.prefix .. "/logs/error.log"
    helpers.wait_until(function()
      local f = io.open(log)
      local text = f and f:read("*a") or ""
      if f then f:close() end
      return text:find("could not send entries due to max_retry_time exceeded. 1 queue "
                       .. "entries were lost", 1, true) ~= nil
             and text:find("handler could not process entries: request to " .. SINK
                           .. "/giveup?fail=1000000 returned status code 500", 1, true) ~= nil
    end, 20)
    assert.same({}, batches("/giveup"))
  end)
end)

describe("kong.tools.queue", function()
  require("tollgate.ngx_shim").install()
  local Queue = require "kong.tools.queue"
  local queue_schema = require "kong.tools.queue_schema"

  _G.kong = _G.kong or require("kong.pdk").new({ database = "off" })

  local n = 0
  local function conf(overrides)
    n = n + 1
    local c = { name = "unit-" .. n, max_batch_size = 1, max_coalescing_delay = 1,
                max_entries = 10000, max_retry_time = 60, initial_retry_delay = 0.01,
                max_retry_delay = 60, concurrency_limit = 1 }
    for k, v in pairs(overrides or {}) do c[k] = v end
    return c
  end

  local function wait_for(f)
    local deadline = ngx.now() + 10
    while not f() do
      assert(ngx.now() < deadline, "condition not met within 10 s")
      ngx.sleep(0.01)
    end
  end

  it("checks its arguments with Kong's messages", function()
    local h = function() return true end
    assert.has_error(function() Queue.enqueue(nil, h) end, "arg #1 (queue_conf) must be a table")
    assert.has_error(function() Queue.enqueue(conf(), nil) end,
                     "arg #2 (handler) must be a function")
    assert.has_error(function() Queue.enqueue(conf(), h, 1) end,
                     "arg #3 (handler_conf) must be a table or nil")
    assert.has_error(function() Queue.enqueue(conf({ name = false }), h) end,
                     "arg #1 (queue_conf) must include a name")
    assert.has_error(function() Queue.enqueue(conf({ max_entries = "x" }), h) end,
                     "arg #1 (queue_conf) max_entries must be a number")
    assert.has_error(function() Queue.enqueue(conf({ max_bytes = "x" }), h) end,
                     "arg #1 (queue_conf) max_bytes must be a number or nil")
    assert.same({ nil, "entry must be a non-nil Lua value" },
                { Queue.enqueue(conf(), h, nil, nil) })
  end)

  it("coalesces entries into batches and passes the handler's conf", function()
    local got = {}
    local c = conf({ max_batch_size = 3, max_coalescing_delay = 3600 })
    for i = 1, 6 do
      assert(Queue.enqueue(c, function(hc, batch)
        got[#got + 1] = { hc.id, batch }
        return true
      end, { id = "h" }, i))
    end
    assert.is_true(Queue.exists(c.name))
    wait_for(function() return #got == 2 end)
    assert.same({ { "h", { 1, 2, 3 } }, { "h", { 4, 5, 6 } } }, got)
    wait_for(function() return not Queue.exists(c.name) end)
  end)

  it("sends after max_coalescing_delay what it has", function()
    local got = {}
    local c = conf({ max_batch_size = 100, max_coalescing_delay = 0.1 })
    Queue.enqueue(c, function(_, b) got[#got + 1] = b; return true end, nil, "a")
    Queue.enqueue(c, function(_, b) got[#got + 1] = b; return true end, nil, "b")
    wait_for(function() return #got == 1 end)
    assert.same({ { "a", "b" } }, got)
  end)

  it("retries with back-off: errors, nil results and thrown errors", function()
    local attempts = 0
    local done = false
    local c = conf({ initial_retry_delay = 0.001, max_retry_delay = 0.01 })
    Queue.enqueue(c, function()
      attempts = attempts + 1
      if attempts == 1 then return nil, "first fails" end
      if attempts == 2 then error("second throws") end
      if attempts == 3 then return false end
      done = true
      return true
    end, nil, "x")
    wait_for(function() return done end)
    assert.equal(4, attempts)
  end)

  it("drops the oldest entries when max_entries is reached", function()
    local c = conf({ max_entries = 2, max_batch_size = 10, max_coalescing_delay = 0.2 })
    local got
    local h = function(_, b) got = b; return true end
    -- no yield between these calls: the queue's timer cannot take entries meanwhile
    assert(Queue.enqueue(c, h, nil, 1))
    assert(Queue.enqueue(c, h, nil, 2))
    assert.is_false(Queue.can_enqueue(c, 3))
    assert.is_true(Queue.is_full(c))
    assert(Queue.enqueue(c, h, nil, 3))
    assert(Queue.enqueue(c, h, nil, 4))
    assert.is_true(Queue.can_enqueue(conf(), "anything")) -- a queue not created yet
    wait_for(function() return got ~= nil end)
    assert.same({ 3, 4 }, got)
    wait_for(function() return not Queue.exists(c.name) end)
  end)

  it("limits bytes with max_bytes", function()
    local c = conf({ max_bytes = 10, max_batch_size = 10, max_coalescing_delay = 0.2 })
    local got
    local h = function(_, b) got = b; return true end
    assert.same({ nil, "string to be queued is longer (11 bytes) than the queue's max_bytes "
                       .. "(10 bytes)" }, { Queue.enqueue(c, h, nil, string.rep("x", 11)) })
    assert(Queue.enqueue(c, h, nil, "12345"))
    assert(Queue.enqueue(c, h, nil, "123"))
    assert.is_false(Queue.can_enqueue(c, "12345"))
    assert.is_true(Queue.can_enqueue(c, "12"))
    assert(Queue.enqueue(c, h, nil, "1234567")) -- drops the oldest until it fits
    assert.is_false(Queue.can_enqueue(c, "1234"))
    wait_for(function() return got ~= nil end)
    assert.same({ "123", "1234567" }, got)
    wait_for(function() return not Queue.exists(c.name) end)
  end)

  it("get_plugin_params maps the legacy parameters", function()
    local qc = Queue.get_plugin_params("http-log", { queue = { max_batch_size = 2 },
                                                     queue_size = 7, flush_timeout = 5 },
                                       "qname")
    assert.equal("qname", qc.name)
    assert.equal(7, qc.max_batch_size)
    assert.equal(5, qc.max_coalescing_delay)
    assert.matches("^http%-log plugin ", qc.log_tag)
  end)

  it("the queue schema has Kong's fields and defaults", function()
    local names = {}
    for _, f in ipairs(queue_schema.fields) do
      local name, def = next(f)
      names[#names + 1] = name
      if name == "max_batch_size" then assert.equal(1, def.default) end
      if name == "max_entries" then assert.equal(10000, def.default) end
      if name == "concurrency_limit" then assert.same({ -1, 1 }, def.one_of) end
    end
    assert.same({ "max_batch_size", "max_coalescing_delay", "max_entries", "max_bytes",
                  "max_retry_time", "initial_retry_delay", "max_retry_delay",
                  "concurrency_limit" }, names)
  end)
end)
