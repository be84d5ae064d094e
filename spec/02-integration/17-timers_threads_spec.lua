-- Timers (at, every, from init_worker/access/log, yielding inside, failing,
-- premature at stop), light threads, semaphores and coroutine.wrap inside
-- access, through the binary with one worker.
local helpers = require "spec.helpers"
local cjson = require "cjson"
local pl_file = require "pl.file"

local PLUGINS_PATH = helpers.custom_plugins_path

local get = helpers.proxy_get

describe("timers", function()
  local port = helpers.mock_upstream_port

  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "y-timer" })
    local s = bp.services:insert { name = "s1" }
    local at = bp.routes:insert { service = s, paths = { "/at" } }
    local err = bp.routes:insert { service = s, paths = { "/error" } }
    local report = bp.routes:insert { service = s, paths = { "/report" } }
    bp.plugins:insert { name = "y-timer", route = at, config = { port = port, mode = "at" } }
    bp.plugins:insert { name = "y-timer", route = err, config = { port = port, mode = "error" } }
    bp.plugins:insert { name = "y-timer", route = report, config = { mode = "report" } }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,y-timer",
      lua_package_path = PLUGINS_PATH,
      worker_threads = 1,
    })
  end)

  local stopped = false
  lazy_teardown(function()
    if not stopped then
      helpers.stop_kong()
    end
  end)

  local function report()
    local res, body = get("/report")
    assert.equal(200, res.status)
    return cjson.decode(body)
  end

  it("ngx.timer.every from init_worker keeps ticking", function()
    local first = report().ticks
    helpers.wait_until(function()
      return report().ticks >= first + 3
    end, 10)
  end)

  it("a sleep in init_worker is refused", function()
    assert.equal("API disabled in the context of init_worker_by_lua*",
                 report().init_worker_sleep:match("API disabled.*$"))
  end)

  it("ngx.timer.at from access runs its callback, which may sleep and use resty.http", function()
    for i = 1, 3 do
      local res = get("/at/anything", { ["X-Id"] = "t" .. i })
      assert.equal(200, res.status)
    end
    helpers.wait_until(function()
      local at = report().at
      return at.t1 and at.t2 and at.t3
    end, 10)
    local r = report()
    for i = 1, 3 do
      assert.same({ premature = false, status = 200, request = "timer" }, r.at["t" .. i])
    end
    assert.matches("bad argument #1 to 'at' (delay must not be negative)", r.negative, 1, true)
    assert.matches("bad argument #2 to 'at' (Lua function expected)", r.bad_fn, 1, true)
  end)

  it("timers from log run after the response", function()
    local before = report().log_timers
    get("/at/anything", { ["X-Id"] = "log" })
    helpers.wait_until(function()
      return report().log_timers >= before + 1
    end, 10)
  end)

  it("counts pending and running timers", function()
    -- the long one and the every one at least
    assert.is_true(report().pending >= 2)
    helpers.wait_until(function()
      return report().running == 0
    end, 10)
    assert.is_false(report().exiting)
  end)

  it("a failing timer is logged and the worker goes on", function()
    local res = get("/error/anything", { ["X-Id"] = "e" })
    assert.equal(200, res.status)
    assert.logfile().has.line("lua entry thread aborted: runtime error: .*y%-timer boom in a timer",
                              false, 10)
    assert.equal(200, (get("/report")).status)
  end)

  it("pending timers run with premature = true when the worker stops", function()
    local log = helpers.error_log_path()
    assert(helpers.stop_kong(nil, true))
    stopped = true
    local text = pl_file.read(log)
    assert.matches("y-timer: long timer ran, premature=true tag=long", text, 1, true)
    assert.matches("y-timer: every timer premature=true", text, 1, true)
    require("pl.dir").rmtree(helpers.test_conf.prefix)
  end)
end)

describe("light threads, semaphores and coroutines in access", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "y-thread" })
    local s = bp.services:insert { name = "s1" }
    for _, mode in ipairs { "spawn", "kill", "semaphore", "wrap", "detached" } do
      local r = bp.routes:insert { service = s, paths = { "/" .. mode } }
      bp.plugins:insert { name = "y-thread", route = r, config = { mode = mode } }
    end
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,y-thread",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  local function run(mode)
    local res, body = get("/" .. mode)
    assert.equal(200, res.status)
    return cjson.decode(body)
  end

  it("ngx.thread.spawn runs children until they park; wait returns the first to end", function()
    local j = run("spawn")
    assert.same({ "parent", "fast", "slow" }, j.order)
    assert.same({ true, "fast" }, j.first)
    assert.same({ true, "slow", "/spawn" }, j.second)
    assert.same({ true, "sync" }, j.third)
    assert.same({ cjson.null, "already waited or killed" }, { j.again[1] or cjson.null, j.again[2] })
    assert.same({ false, "y-thread child failed" }, j.failed)
  end)

  it("access ends only once the light threads it spawned ended", function()
    local res, body = get("/detached/anything")
    assert.equal(200, res.status)
    assert.equal("done", cjson.decode(body).headers["x-detached"])
  end)

  it("ngx.thread.kill stops a parked child", function()
    local j = run("kill")
    assert.is_true(j.killed)
    assert.equal("already waited or killed", j.wait[2])
    assert.is_false(j.reached)
  end)

  it("ngx.semaphore: post wakes waiters, wait times out, count", function()
    local j = run("semaphore")
    assert.equal(2, #j.got)
    for _, g in ipairs(j.got) do
      assert.is_true(g[2])
    end
    assert.equal("timeout", j.timed_out[2])
    assert.equal(2, j.count)
  end)

  it("coroutine.wrap and coroutine.resume work alongside ngx.sleep", function()
    local j = run("wrap")
    assert.same({ 10, 20, 30, "end:/wrap" }, j.vals)
    assert.same({ { true, 2 }, { true, 10 }, "dead" }, j.resume)
  end)
end)
