-- Retries, passive and active health checks, the Admin API's health
-- endpoints, health kept across reloads, and 503 when no target is healthy.
local helpers = require "spec.helpers"
local targets = require "spec.helpers.targets"
local cjson = require "cjson"

local P = {}
for i = 1, 10 do P[i] = targets.port(10 + i) end
local TLS = P[10] -- openssl s_server -www
local DEAD = P[9] -- nothing listens there
local function addr(p) return "127.0.0.1:" .. p end

local NO_PEER = "failure to get a peer from the ring-balancer"

local function echo_count(port)
  local c = helpers.http_client("127.0.0.1", port, 5000)
  local res = assert(c:send { path = "/_echo/count" })
  c:close()
  return cjson.decode(res.body).count
end

local function echo_reset(port)
  local c = helpers.http_client("127.0.0.1", port, 5000)
  assert(c:send { path = "/_echo/reset" })
  c:close()
end

describe("balancer health", function()
  local bp
  local pids = {}
  local rows = {}

  local function upstream(name, fields, ports, service)
    fields = fields or {}
    fields.name = name
    local u = bp.upstreams:insert(fields)
    rows[name] = { upstream = u, targets = {} }
    for _, p in ipairs(ports) do
      rows[name].targets[p] = bp.targets:insert { upstream = u, target = addr(p) }
    end
    service = service or {}
    service.name, service.host, service.port = name, name, 80
    local s = bp.services:insert(service)
    bp.routes:insert { name = name, service = s, paths = { "/" .. name } }
    return u
  end

  local function start()
    assert(helpers.start_kong { database = "off", nginx_worker_processes = 1 })
  end

  local tls_pid

  -- an HTTPS target: openssl s_server with a self-signed certificate
  local function start_tls()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. " && openssl req -x509 -newkey rsa:2048 -nodes "
                      .. "-subj /CN=localhost -days 1 -keyout " .. dir .. "/k.pem -out "
                      .. dir .. "/c.pem >/dev/null 2>&1"))
    local f = io.popen("openssl s_server -quiet -www -accept " .. TLS .. " -cert " .. dir
                       .. "/c.pem -key " .. dir .. "/k.pem >/dev/null 2>&1 & echo $!")
    tls_pid = tonumber(f:read("*l"))
    f:close()
    helpers.wait_until(function() return helpers.can_connect("127.0.0.1", TLS) end, 10)
  end

  lazy_setup(function()
    for i = 1, 6 do pids[i] = targets.start(P[i]) end
    pids[7] = targets.start(P[7], { close = true })
    pids[8] = targets.start(P[8], { delay = 3 }) -- accepts, answers too late
    start_tls()
    bp = helpers.get_db_utils("off")
    upstream("retry", nil, { DEAD, P[1] })
    upstream("noretry", nil, { DEAD, P[1] }, { retries = 0 })
    upstream("slow", nil, { P[1] }, { read_timeout = 300, retries = 0 })
    upstream("slowfirst", nil, { P[8], P[1] }, { read_timeout = 300 })
    upstream("closing", nil, { P[7], P[1] })
    upstream("passive", { healthchecks = { passive = { unhealthy = { tcp_failures = 1 } } } },
             { DEAD, P[1] })
    upstream("p500", { healthchecks = { passive = { unhealthy = { http_failures = 2 } } } },
             { P[1], P[2] })
    upstream("active", { healthchecks = { active = {
        http_path = "/",
        healthy = { interval = 0.1, successes = 1 },
        unhealthy = { interval = 0.1, tcp_failures = 1 },
      } } }, { P[3], P[4] })
    upstream("active500", { healthchecks = { active = {
        http_path = "/status/500",
        healthy = { interval = 0.1, successes = 1 },
        unhealthy = { interval = 0.1, http_failures = 1 },
      } } }, { P[5] })
    upstream("activetcp", { healthchecks = { active = {
        type = "tcp",
        healthy = { interval = 0.1, successes = 1 },
        unhealthy = { interval = 0.1, tcp_failures = 2 },
      } } }, { P[5], DEAD })
    upstream("manual", nil, { P[5], P[6] })
    upstream("empty", nil, {})
    upstream("threshold", { healthchecks = { threshold = 60 } }, { P[5], P[6] })
    for _, verify in ipairs({ false, true }) do
      upstream(verify and "tlsverify" or "tls", { healthchecks = { active = {
          type = "https",
          https_verify_certificate = verify,
          healthy = { interval = 0.1, successes = 1 },
          unhealthy = { interval = 0.1, tcp_failures = 1 },
        } } }, { TLS })
    end
    upstream("keep", { healthchecks = { passive = { unhealthy = { tcp_failures = 1 } } } },
             { P[5], P[6] })
    start()
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    for i, pid in pairs(pids) do targets.stop(pid, P[i]) end
    targets.stop(tls_pid, TLS)
  end)

  describe("retries", function()
    it("move to another target on connect failure", function()
      local by = targets.spread(20, "/retry")
      assert.same({ [P[1]] = 20 }, by)
    end)

    it("retry a POST whose body was never sent", function()
      for _ = 1, 4 do
        local c = helpers.proxy_client(10000)
        local res = assert(c:send { method = "POST", path = "/retry", body = "abc" })
        c:close()
        assert.equal(200, res.status)
        assert.equal("abc", cjson.decode(res.body).body)
      end
    end)

    it("are not made with retries = 0", function()
      local by = targets.spread(20, "/noretry")
      assert.equal(10, by["status:502"])
      assert.equal(10, by[P[1]])
    end)

    it("resend an idempotent request closed on before any answer, never a sent POST", function()
      echo_reset(P[7])
      -- round-robin: each request tries the closing target first, then the other
      assert.same({ [P[1]] = 20 }, targets.spread(20, "/closing"))
      assert.equal(20, echo_count(P[7]))
      echo_reset(P[7])
      echo_reset(P[1])
      -- a POST that failed is answered 502 (the next one starts at the other target)
      local statuses = {}
      for _ = 1, 4 do
        local c = helpers.proxy_client(10000)
        local res = assert(c:send { method = "POST", path = "/closing", body = "abc" })
        c:close()
        statuses[res.status] = (statuses[res.status] or 0) + 1
      end
      assert.same({ [200] = 2, [502] = 2 }, statuses)
      assert.equal(2, echo_count(P[7]))
      assert.equal(2, echo_count(P[1])) -- none of the failed ones was sent again
    end)

    it("answer 504 when the read times out and no retry is left", function()
      echo_reset(P[1])
      local st = targets.get("/slow/delay/2")
      assert.equal(504, st)
      assert.equal(1, echo_count(P[1]))
    end)

    it("move on after a read timeout with no byte of the answer (proxy_next_upstream timeout)",
       function()
      -- round-robin: every other request tries the silent target first
      assert.same({ [P[1]] = 6 }, targets.spread(6, "/slowfirst"))
    end)

    it("never resend a POST whose request was sent when the read timed out", function()
      echo_reset(P[1])
      echo_reset(P[8])
      local statuses = {}
      for _ = 1, 4 do
        local c = helpers.proxy_client(10000)
        local res = assert(c:send { method = "POST", path = "/slowfirst", body = "abc" })
        c:close()
        statuses[res.status] = (statuses[res.status] or 0) + 1
      end
      assert.same({ [200] = 2, [504] = 2 }, statuses)
      assert.equal(2, echo_count(P[1])) -- the timed-out ones went nowhere else
    end)
  end)

  describe("passive checks", function()
    it("mark a target unhealthy after tcp_failures and stop sending it traffic", function()
      assert.equal(200, (targets.get("/passive")))
      assert.equal(200, (targets.get("/passive")))
      targets.wait_health("passive", addr(DEAD), "UNHEALTHY")
      assert.equal("HEALTHY", targets.health("passive")[addr(P[1])])
      assert.same({ [P[1]] = 20 }, targets.spread(20, "/passive"))
    end)

    it("break the circuit on http_failures and answer 503 when no target is left", function()
      for _ = 1, 4 do
        assert.equal(500, (targets.get("/p500/status/500")))
      end
      targets.wait_health("p500", addr(P[1]), "UNHEALTHY")
      targets.wait_health("p500", addr(P[2]), "UNHEALTHY")
      local st, _, res = targets.get("/p500")
      assert.equal(503, st)
      assert.equal(NO_PEER, cjson.decode(res.body).message)
      -- no active checks: the circuit stays open until the Admin API closes it
      assert.equal(503, (targets.get("/p500")))
      assert.equal(204, (targets.admin("PUT", "/upstreams/p500/targets/" .. addr(P[2]) .. "/healthy")))
      assert.same({ [P[2]] = 5 }, targets.spread(5, "/p500"))
    end)
  end)

  describe("active checks", function()
    it("eject a killed target and re-admit it when it is back", function()
      targets.wait_health("active", addr(P[3]), "HEALTHY")
      targets.wait_health("active", addr(P[4]), "HEALTHY")
      targets.stop(pids[4], P[4])
      pids[4] = nil
      targets.wait_health("active", addr(P[4]), "UNHEALTHY")
      assert.same({ [P[3]] = 20 }, targets.spread(20, "/active"))
      pids[4] = targets.start(P[4])
      targets.wait_health("active", addr(P[4]), "HEALTHY")
      helpers.pwait_until(function()
        assert.truthy(targets.spread(4, "/active")[P[4]])
      end, 10)
    end)

    it("count the unhealthy http_statuses of the probes", function()
      targets.wait_health("active500", addr(P[5]), "UNHEALTHY")
      local st, _, res = targets.get("/active500")
      assert.equal(503, st)
      assert.equal(NO_PEER, cjson.decode(res.body).message)
    end)

    it("probe https targets, verifying their certificate when asked", function()
      -- a self-signed certificate fails verification
      targets.wait_health("tlsverify", addr(TLS), "UNHEALTHY")
      -- without verification, the probes' 200 re-admits a target set unhealthy
      assert.equal(204, (targets.admin("PUT", "/upstreams/tls/targets/" .. addr(TLS) .. "/unhealthy")))
      targets.wait_health("tls", addr(TLS), "HEALTHY")
    end)

    it("probe with tcp connects", function()
      targets.wait_health("activetcp", addr(DEAD), "UNHEALTHY")
      assert.equal("HEALTHY", targets.health("activetcp")[addr(P[5])])
    end)
  end)

  it("an upstream without targets answers 503", function()
    local st, _, res = targets.get("/empty")
    assert.equal(503, st)
    assert.equal(NO_PEER, cjson.decode(res.body).message)
  end)

  it("answers 503 once the healthy weight falls under healthchecks.threshold", function()
    assert.equal(200, (targets.get("/threshold")))
    assert.equal(204, (targets.admin("PUT", "/upstreams/threshold/targets/" .. addr(P[5])
                                            .. "/unhealthy")))
    local st, _, res = targets.get("/threshold")
    assert.equal(503, st)
    assert.equal(NO_PEER, cjson.decode(res.body).message)
    local _, body = targets.admin("GET", "/upstreams/threshold/health?balancer_health=1")
    assert.equal("UNHEALTHY", body.data.balancer_health)
    assert.equal(204, (targets.admin("PUT", "/upstreams/threshold/targets/" .. addr(P[5])
                                            .. "/healthy")))
    assert.equal(200, (targets.get("/threshold")))
  end)

  describe("Admin API", function()
    it("GET /upstreams/{name or id}/health lists the targets with their health", function()
      local st, body = targets.admin("GET", "/upstreams/manual/health")
      assert.equal(200, st)
      assert.equal(2, #body.data)
      assert.equal(cjson.null, body.next)
      assert.truthy(body.node_id)
      for _, t in ipairs(body.data) do
        assert.equal("HEALTHCHECKS_OFF", t.health)
        assert.equal(rows.manual.upstream.id, t.upstream.id)
        assert.equal(100, t.weight)
        assert.equal("127.0.0.1", t.data.addresses[1].ip)
        assert.equal("HEALTHCHECKS_OFF", t.data.addresses[1].health)
      end
      local st2, body2 = targets.admin("GET", "/upstreams/" .. rows.manual.upstream.id .. "/health")
      assert.equal(200, st2)
      assert.equal(2, #body2.data)
      local st3, body3 = targets.admin("GET", "/upstreams/passive/health?balancer_health=1")
      assert.equal(200, st3)
      assert.equal("HEALTHY", body3.data.health)
      assert.equal(rows.passive.upstream.id, body3.data.id)
      assert.same({ total = 200, available = 100, unavailable = 100 }, body3.data.details.weight)
      assert.equal(2, #body3.data.details.hosts)
      assert.equal(404, (targets.admin("GET", "/upstreams/nope/health")))
      -- paged as /targets
      local _, p1 = targets.admin("GET", "/upstreams/manual/health?size=1")
      assert.equal(1, #p1.data)
      assert.equal("/upstreams/manual/health?offset=1", p1.next)
      local _, p2 = targets.admin("GET", p1.next .. "&size=1")
      assert.equal(1, #p2.data)
      assert.equal(cjson.null, p2.next)
      assert.are_not.equal(p1.data[1].target, p2.data[1].target)
    end)

    it("PUT .../targets/{t}/unhealthy and /healthy override the health (204)", function()
      local t5 = addr(P[5])
      local st, _, res = targets.admin("PUT", "/upstreams/manual/targets/" .. t5 .. "/unhealthy")
      assert.equal(204, st)
      assert.equal("", res.body or "")
      assert.same({ [P[6]] = 10 }, targets.spread(10, "/manual"))
      -- by target id
      local id6 = rows.manual.targets[P[6]].id
      assert.equal(204, (targets.admin("PUT", "/upstreams/manual/targets/" .. id6 .. "/unhealthy")))
      local st2, _, res2 = targets.get("/manual")
      assert.equal(503, st2)
      assert.equal(NO_PEER, cjson.decode(res2.body).message)
      assert.equal(204, (targets.admin("PUT", "/upstreams/manual/targets/" .. t5 .. "/healthy")))
      assert.equal(204, (targets.admin("PUT", "/upstreams/manual/targets/" .. id6 .. "/healthy")))
      local by = targets.spread(10, "/manual")
      assert.equal(5, by[P[5]])
      assert.equal(5, by[P[6]])
      -- one address of a target
      assert.equal(204, (targets.admin("PUT", "/upstreams/manual/targets/" .. t5 .. "/" .. t5
                                              .. "/unhealthy")))
      assert.same({ [P[6]] = 4 }, targets.spread(4, "/manual"))
      assert.equal(204, (targets.admin("PUT", "/upstreams/manual/targets/" .. t5 .. "/" .. t5
                                              .. "/healthy")))
      assert.equal(2, targets.spread(4, "/manual")[P[5]])
      assert.equal(400, (targets.admin("PUT", "/upstreams/manual/targets/" .. t5
                                              .. "/10.1.1.1:80/healthy")))
      assert.equal(404, (targets.admin("PUT", "/upstreams/manual/targets/127.0.0.1:1/healthy")))
      assert.equal(404, (targets.admin("PUT", "/upstreams/nope/targets/" .. t5 .. "/healthy")))
    end)
  end)

  describe("reloads", function()
    it("keep the health of an unchanged upstream and reset a changed one", function()
      local t6 = addr(P[6])
      assert.equal(204, (targets.admin("PUT", "/upstreams/keep/targets/" .. t6 .. "/unhealthy")))
      assert.equal("UNHEALTHY", targets.health("keep")[t6])
      -- an unrelated change
      local s = bp.services:insert { name = "other" }
      bp.routes:insert { name = "other", service = s, paths = { "/other" } }
      assert(helpers.reload_kong())
      helpers.wait_until(function() return targets.get("/other") == 200 end, 10)
      assert.equal("UNHEALTHY", targets.health("keep")[t6])
      assert.same({ [P[5]] = 6 }, targets.spread(6, "/keep"))
      -- the upstream itself changes: a new balancer, healthy again
      bp.upstreams:update(rows.keep.upstream, { slots = 20 })
      assert(helpers.reload_kong())
      targets.wait_health("keep", t6, "HEALTHY", 10)
    end)
  end)
end)
