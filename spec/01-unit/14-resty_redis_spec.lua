-- resty.redis against spec/fixtures/resp_server.lua (a RESP server in Lua):
-- connect, timeouts, the generic command dispatcher and its reply types,
-- errors, pipelining, auth/select, keepalive pools.
local helpers = require "spec.helpers"
local shim = require "tollgate.ngx_shim"

local ngx = shim.install()
local redis = require "resty.redis"

local PORT, AUTH_PORT -- the first with no password, the other with "s3cret"

local pids = {}

-- Starts the fixture on the first free port of `ports` (a port of the range
-- can be taken as an ephemeral source port); returns that port.
local function start_server(ports, password)
  for _, port in ipairs(ports) do
    local f = io.popen(helpers.bin_path .. " lua " .. helpers.root
                       .. "/spec/fixtures/resp_server.lua " .. port .. " " .. (password or "")
                       .. " >/dev/null 2>&1 & echo $!")
    local pid = f:read("*l")
    f:close()
    if pcall(helpers.wait_for_port, port, 3) then
      pids[#pids + 1] = pid
      return port
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
  end
  error("the RESP fixture did not start")
end

local function client(port)
  local red = redis:new()
  red:set_timeouts(1000, 1000, 1000)
  assert(red:connect("127.0.0.1", port or PORT))
  return red
end

describe("resty.redis", function()
  lazy_setup(function()
    local m = helpers.mock_upstream_port
    PORT = start_server({ m + 8, m + 10, m + 12 })
    AUTH_PORT = start_server({ m + 9, m + 11, m + 13 }, "s3cret")
  end)

  lazy_teardown(function()
    for _, pid in ipairs(pids) do
      os.execute("kill " .. pid)
    end
  end)

  it("sends any command and maps the reply types", function()
    local red = client()
    assert.equal("OK", red:flushall())
    assert.equal("OK", red:set("k", "v"))                 -- status
    assert.equal("v", red:get("k"))                       -- bulk
    assert.equal(ngx.null, red:get("missing"))            -- nil bulk
    assert.equal(1, red:incr("n"))                        -- integer
    assert.equal(11, red:incrby("n", 10))
    assert.same({ "v", ngx.null }, red:mget("k", "missing")) -- multi-bulk
    assert.same({ false, "ERR unknown command 'nosuch'" }, { red:nosuch("x") })
    assert.equal("PONG", red:ping())
    assert.equal(2, red:rpush("l", "a", "b"))
    assert.same({ "a", "b" }, red:lrange("l", 0, -1))
    red:close()
  end)

  it("hmset takes a table; array_to_hash turns pairs into a table", function()
    local red = client()
    assert.equal("OK", red:hmset("h", { a = "1", b = "2" }))
    assert.same({ a = "1", b = "2" }, red:array_to_hash(red:hgetall("h")))
    assert.equal("2", red:hget("h", "b"))
    red:close()
  end)

  it("pipelines commands, errors included", function()
    local red = client()
    red:init_pipeline()
    assert.is_true(red:set("p1", "x"))
    red:get("p1")
    red:nosuch()
    red:del("p1")
    local res = red:commit_pipeline()
    assert.same({ "OK", "x", { false, "ERR unknown command 'nosuch'" }, 1 }, res)
    assert.same({ nil, "no pipeline" }, { red:commit_pipeline() })
    red:init_pipeline()
    red:set("p2", "y")
    red:cancel_pipeline()
    assert.equal(ngx.null, red:get("p2"))
    red:close()
  end)

  it("auth and select", function()
    local red = client(AUTH_PORT)
    assert.same({ false, "NOAUTH Authentication required." }, { red:get("x") })
    assert.same({ false, "WRONGPASS invalid username-password pair or user is disabled." },
                { red:auth("nope") })
    assert.equal("OK", red:auth("s3cret"))
    assert.equal("OK", red:select(3))
    assert.equal("OK", red:set("db3", "yes"))
    assert.equal("OK", red:select(0))
    assert.equal(ngx.null, red:get("db3"))
    red:close()
  end)

  it("keeps connections alive: get_reused_times, and the pooled state", function()
    local red = client()
    assert.equal(0, red:get_reused_times())
    assert.equal("OK", red:select(5))
    assert.equal(1, red:set_keepalive(10000, 10))
    local again = client()
    assert.equal(1, again:get_reused_times())
    assert.equal("OK", again:set("in5", "x")) -- still on db 5, as with Redis
    again:select(0)
    assert.equal(ngx.null, again:get("in5"))
    again:close()
  end)

  it("subscribe, read_reply, unsubscribe", function()
    local sub = client()
    assert.same({ "subscribe", "news", 1 }, sub:subscribe("news"))
    assert.same({ nil, "subscribed state" }, { sub:set_keepalive() })
    local pub = client()
    assert.equal(1, pub:publish("news", "hello"))
    assert.same({ "message", "news", "hello" }, sub:read_reply())
    sub:set_timeout(50)
    assert.same({ nil, "timeout" }, { sub:read_reply() })
    assert.same({ "unsubscribe", "news", 0 }, sub:unsubscribe("news"))
    assert.same({ nil, "not subscribed" }, { sub:read_reply() })
    sub:close()
    pub:close()
  end)

  it("reports connection errors", function()
    local red = redis:new()
    red:set_timeout(200)
    assert.same({ nil, "connection refused" }, { red:connect("127.0.0.1", 1) })
    assert.same({ nil, "closed" }, { red:get("x") })
  end)
end)
