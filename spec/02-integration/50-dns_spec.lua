-- Service hosts resolved through a DNS server (c-ares on the control thread):
-- tollgate is pointed at tg_dns_server on loopback with dns_resolver, and the
-- spec changes the server's records while traffic flows.
local helpers = require "spec.helpers"
local cjson = require "cjson"
local pl_file = require "pl.file"
local pl_dir = require "pl.dir"

local DIR = helpers.test_conf.prefix .. "-dns"
local RECORDS = DIR .. "/records"
local QUERYLOG = DIR .. "/queries"
local HOSTS = DIR .. "/hosts"
local PORT = helpers.mock_upstream_port
local PORTS = helpers.mock_upstream_ports

local BASE_RECORDS = {
  "A a.test 3600 127.0.0.1",
  -- SRV: priority 10 weighted 3:1 over two ports; priority 20 never used
  "SRV srv.test 3600 10 75 " .. PORTS[2] .. " t1.test",
  "SRV srv.test 3600 10 25 " .. PORTS[3] .. " t2.test",
  "SRV srv.test 3600 20 100 " .. PORTS[1] .. " t1.test",
  "A t1.test 3600 127.0.0.1",
  "A t2.test 3600 127.0.0.1",
  "A ut.test 3600 127.0.0.1",
  -- an SRV record whose target does not exist: the A record is used
  "SRV mixed.test 3600 1 1 " .. PORTS[3] .. " nowhere.test",
  "A mixed.test 3600 127.0.0.1",
  "A move.test 1 127.0.0.1",
  "A stale.test 1 127.0.0.1",
  "CNAME alias.test 3600 a.test",
  -- an upstream target's name with two addresses (the echo servers)
  "A tmulti.test 1 127.0.0.1",
  "A tmulti.test 1 127.0.0.2",
  "SERVFAIL fail.test",
  "MALFORMED bad.test",
}

-- the records the responder serves (replaced atomically): BASE_RECORDS with
-- the lines whose name is a key of `changes` replaced by its lines
local function set_records(changes)
  local lines = {}
  for _, l in ipairs(BASE_RECORDS) do
    if not (changes and changes[l:match("^%S+ (%S+)")]) then lines[#lines + 1] = l end
  end
  for _, more in pairs(changes or {}) do
    for _, l in ipairs(more) do lines[#lines + 1] = l end
  end
  local tmp = RECORDS .. ".tmp"
  assert(pl_file.write(tmp, table.concat(lines, "\n") .. "\n"))
  assert(os.rename(tmp, RECORDS))
end

-- how many queries of `qtype` for `name` the responder has received
local function queries(name, qtype)
  local n = 0
  for line in (pl_file.read(QUERYLOG) or ""):gmatch("[^\n]+") do
    local qn, qt = line:match("^(%S+) (%S+)$")
    if qn == name and (qtype == nil or qt == qtype) then n = n + 1 end
  end
  return n
end

local function get(path)
  local client = helpers.proxy_client()
  local res = assert(client:get(path))
  local body = res:read_body()
  client:close()
  return res, body
end

-- a second echo server on 127.0.0.2 (same port), logging what it serves
local echo2_pid
local ECHO2_LOG = DIR .. "/echo2.log"
local function start_echo2()
  local f = io.popen(helpers.echo_server_bin .. " -b 127.0.0.2 -l " .. ECHO2_LOG .. " " .. PORT
                     .. " >/dev/null 2>&1 & echo $!")
  echo2_pid = tonumber(f:read("*l"))
  f:close()
  helpers.wait_until(function()
    local c = helpers.http_client("127.0.0.2", PORT, 1000)
    local ok = c:get("/_echo/count") ~= nil
    c:close()
    return ok
  end, 10)
end

local function lines_of(path)
  local n = 0
  for _ in (pl_file.read(path) or ""):gmatch("[^\n]+") do n = n + 1 end
  return n
end

describe("DNS resolution of service hosts", function()
  lazy_setup(function()
    pl_dir.makepath(DIR)
    os.remove(QUERYLOG)
    os.remove(ECHO2_LOG)
    set_records()
    assert(helpers.start_dns_server(RECORDS, QUERYLOG))
    assert(pl_file.write(HOSTS, "127.0.0.1 fromhosts.test\n"))
    start_echo2()

    local bp = helpers.get_db_utils("off")
    local function svc(name, host, port)
      local s = bp.services:insert { name = name, host = host, port = port or PORT }
      bp.routes:insert { service = s, paths = { "/" .. name } }
    end
    svc("a", "a.test")
    svc("srv", "srv.test", 80) -- the SRV records' ports win
    svc("move", "move.test")
    svc("stale", "stale.test")
    svc("nx", "nx.test")
    svc("hosts", "fromhosts.test")
    svc("alias", "alias.test")
    svc("fail", "fail.test")
    svc("bad", "bad.test")
    svc("mixed", "mixed.test")
    -- an upstream whose targets are hostnames
    local up = bp.upstreams:insert { name = "up.test" }
    bp.targets:insert { upstream = up, target = "ut.test:" .. PORTS[1], weight = 1 }
    bp.targets:insert { upstream = up, target = "fromhosts.test:" .. PORTS[2], weight = 1 }
    svc("up", "up.test")
    local multi = bp.upstreams:insert { name = "multi.test" }
    bp.targets:insert { upstream = multi, target = "tmulti.test:" .. PORT, weight = 10 }
    svc("multi", "multi.test")
    assert(helpers.start_kong {
      worker_threads = 1,
      dns_resolver = "127.0.0.1:" .. helpers.dns_server_port,
      dns_hostsfile = HOSTS,
      dns_stale_ttl = 10,
      dns_not_found_ttl = 2,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    helpers.stop_dns_server()
    if echo2_pid then os.execute("kill " .. echo2_pid) end
  end)

  it("proxies to a name's A record from the first request", function()
    local res = get("/a")
    assert.equal(200, res.status)
    assert.equal(tostring(PORT), res.headers["X-Echo-Server-Port"])
  end)

  it("asks the server once per TTL, not per request", function()
    for _ = 1, 20 do assert.equal(200, get("/a").status) end
    -- dns_order LAST,SRV,A,CNAME: an empty SRV answer, then A
    assert.equal(1, queries("a.test", "SRV"))
    assert.equal(1, queries("a.test", "A"))
  end)

  it("spreads SRV traffic by weight over the records' ports, lowest priority only", function()
    local seen, first8 = {}, {}
    for i = 1, 100 do
      local res = get("/srv")
      assert.equal(200, res.status)
      local p = res.headers["X-Echo-Server-Port"]
      seen[p] = (seen[p] or 0) + 1
      if i <= 8 then first8[p] = true end
    end
    assert.same({ [tostring(PORTS[2])] = 75, [tostring(PORTS[3])] = 25 }, seen)
    -- interleaved, not in runs of 75 and 25
    assert.same({ [tostring(PORTS[2])] = true, [tostring(PORTS[3])] = true }, first8)
    -- the SRV targets were resolved by the gateway
    assert.equal(1, queries("t1.test", "A"))
    assert.equal(1, queries("t2.test", "A"))
  end)

  it("moves on to the next type when an SRV record's targets do not resolve", function()
    local res = get("/mixed")
    assert.equal(200, res.status)
    assert.equal(tostring(PORT), res.headers["X-Echo-Server-Port"])
    assert.equal(1, queries("nowhere.test", "A"))
  end)

  it("follows a CNAME", function()
    assert.equal(200, get("/alias").status)
  end)

  it("re-resolves when the TTL expires and traffic moves to the new address", function()
    assert.equal(200, get("/move").status)
    local before = lines_of(ECHO2_LOG)
    assert.equal(0, before)
    set_records { ["move.test"] = { "A move.test 1 127.0.0.2" } }
    helpers.wait_until(function()
      return get("/move").status == 200 and lines_of(ECHO2_LOG) > 0
    end, 20)
    -- and stays there
    local n = lines_of(ECHO2_LOG)
    for _ = 1, 5 do assert.equal(200, get("/move").status) end
    assert.equal(n + 5, lines_of(ECHO2_LOG))
    assert.is_true(queries("move.test", "A") >= 2)
  end)

  it("serves stale answers while the server does not answer, then fails after dns_stale_ttl", function()
    assert.equal(200, get("/stale").status)
    set_records { ["move.test"] = { "A move.test 1 127.0.0.2" }, ["stale.test"] = { "DROP stale.test" } }
    local asked = queries("stale.test")
    -- a refresh went unanswered...
    helpers.wait_until(function() return queries("stale.test") > asked end, 20)
    -- ... and the previous address is still served (dns_stale_ttl = 10)
    assert.equal(200, get("/stale").status)
    -- once the stale window has passed: Kong's error for a failed resolution
    local res, body
    helpers.wait_until(function()
      res, body = get("/stale")
      return res.status ~= 200
    end, 60)
    assert.equal(500, res.status)
    assert.matches("failed the initial dns/balancer resolve for 'stale.test' with: ",
                   cjson.decode(body).message, 1, true)
  end)

  it("answers 503 name resolution failed for NXDOMAIN, and asks again after dns_not_found_ttl", function()
    local res, body = get("/nx")
    assert.equal(503, res.status)
    assert.equal("name resolution failed", cjson.decode(body).message)
    set_records { ["move.test"] = { "A move.test 1 127.0.0.2" }, ["stale.test"] = { "DROP stale.test" },
                  ["nx.test"] = { "A nx.test 3600 127.0.0.1" } }
    helpers.wait_until(function() return get("/nx").status == 200 end, 30)
  end)

  it("answers Kong's 500 when the server fails and there is no previous answer", function()
    local res, body = get("/fail")
    assert.equal(500, res.status)
    assert.equal("failed the initial dns/balancer resolve for 'fail.test' with: "
                 .. "dns server error: 2 server failure", cjson.decode(body).message)
  end)

  it("treats answers it cannot parse as no records, and keeps serving", function()
    local res, body = get("/bad")
    assert.equal(503, res.status)
    assert.equal("name resolution failed", cjson.decode(body).message)
    assert.equal(200, get("/a").status)
  end)

  it("resolves an upstream's hostname targets through the resolver and the hostsfile", function()
    local seen = {}
    for _ = 1, 4 do
      local res = get("/up")
      assert.equal(200, res.status)
      seen[res.headers["X-Echo-Server-Port"]] = true
    end
    assert.same({ [tostring(PORTS[1])] = true, [tostring(PORTS[2])] = true }, seen)
    assert.is_true(queries("ut.test", "A") >= 1)
  end)

  it("resolves dns_hostsfile names without asking the server", function()
    local res = get("/hosts")
    assert.equal(200, res.status)
    assert.equal(0, queries("fromhosts.test"))
  end)

  describe("an upstream target that is a hostname", function()
    local function health()
      local c = helpers.admin_client()
      local res = assert(c:get("/upstreams/multi.test/health"))
      local raw = res:read_body()
      local body = cjson.decode(raw)
      c:close()
      local ips = {}
      for _, a in ipairs(body.data[1].data.addresses) do
        ips[#ips + 1] = a.ip .. ":" .. a.port .. "/" .. a.weight
      end
      table.sort(ips)
      return ips, body.data[1]
    end

    it("is balanced over every address of its name, each with the target's weight", function()
      local before = lines_of(ECHO2_LOG)
      for _ = 1, 10 do assert.equal(200, get("/multi").status) end
      local on2 = lines_of(ECHO2_LOG) - before
      -- round-robin over the two addresses
      assert.equal(5, on2)
      local ips, row = health()
      assert.same({ "127.0.0.1:" .. PORT .. "/10", "127.0.0.2:" .. PORT .. "/10" }, ips)
      assert.equal("tmulti.test:" .. PORT, row.target)
      assert.equal(20, row.data.weight.total)
    end)

    it("follows its name when the addresses change at the TTL", function()
      set_records { ["tmulti.test"] = { "A tmulti.test 1 127.0.0.2" } }
      helpers.wait_until(function()
        local ips = health()
        return #ips == 1 and ips[1] == "127.0.0.2:" .. PORT .. "/10"
      end, 20)
      local before = lines_of(ECHO2_LOG)
      for _ = 1, 6 do assert.equal(200, get("/multi").status) end
      assert.equal(6, lines_of(ECHO2_LOG) - before)
      -- and back to both
      set_records()
      helpers.wait_until(function() return #health() == 2 end, 20)
    end)
  end)
end)

describe("DNS resolution with dns_valid_ttl, across reloads", function()
  local bp

  lazy_setup(function()
    pl_dir.makepath(DIR)
    os.remove(QUERYLOG)
    set_records { ["vt.test"] = { "SRV vt.test 3600 1 1 " .. PORTS[1] .. " t1.test" } }
    assert(helpers.start_dns_server(RECORDS, QUERYLOG))
    bp = helpers.get_db_utils("off")
    local s = bp.services:insert { name = "vt", host = "vt.test", port = 80 }
    bp.routes:insert { service = s, paths = { "/vt" } }
    assert(helpers.start_kong {
      dns_resolver = "127.0.0.1:" .. helpers.dns_server_port,
      dns_valid_ttl = 1,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    helpers.stop_dns_server()
  end)

  it("re-resolves after dns_valid_ttl whatever the records' TTL", function()
    assert.equal(tostring(PORTS[1]), get("/vt").headers["X-Echo-Server-Port"])
    set_records { ["vt.test"] = { "SRV vt.test 3600 1 1 " .. PORTS[2] .. " t1.test" } }
    helpers.wait_until(function()
      return get("/vt").headers["X-Echo-Server-Port"] == tostring(PORTS[2])
    end, 20)
  end)

  it("resolves the names of a reloaded config before it serves it", function()
    local s = bp.services:insert { name = "a", host = "a.test", port = PORT }
    bp.routes:insert { service = s, paths = { "/a" } }
    assert(helpers.reload_kong())
    local res
    helpers.wait_until(function()
      res = get("/a")
      return res.status ~= 404
    end, 20)
    -- the first request the new routes see already has the name's answer
    assert.equal(200, res.status)
    assert.equal(1, queries("a.test", "A"))
  end)
end)
