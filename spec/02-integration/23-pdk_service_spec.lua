-- kong.service.set_upstream / set_target / set_retries / set_timeouts through
-- the real binary: the ps-service fixture plugin
-- (spec/fixtures/custom_plugins/kong/plugins/ps-service) calls them as the
-- request's X-Ps-* headers say, and separate tg_echo_server targets tell
-- (X-Echo-Server-Port) where each request went.
local helpers = require "spec.helpers"
local targets = require "spec.helpers.targets"
local cjson = require "cjson"
local pl_file = require "pl.file"
local tls = require "spec.helpers.tls"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"
local P = { targets.port(11), targets.port(12), targets.port(13), targets.port(14) }
local DEAD = targets.port(19) -- nothing listens there
local HOSTS = os.tmpname()

local function get(path, headers, client)
  local c = client or helpers.proxy_client(10000)
  local res = assert(c:send { method = "GET", path = path, headers = headers })
  local body = res:read_body()
  if not client then c:close() end
  return res, body, tonumber(res.headers["x-echo-server-port"])
end

describe("kong.service (balancer overrides)", function()
  local pids = {}

  lazy_setup(function()
    for i = 1, 3 do pids[i] = targets.start(P[i]) end
    pids[4] = targets.start(P[4], { delay = 3 })
    assert(pl_file.write(HOSTS, "127.0.0.1 ps-svc.test\n"))
    local bp = helpers.get_db_utils("off", nil, { "ps-service" })
    -- the default: the mock upstream
    local s = bp.services:insert { name = "mock", host = helpers.mock_upstream_host,
                                   port = helpers.mock_upstream_port, retries = 0 }
    bp.routes:insert { service = s, paths = { "/ps" } }
    -- a name the config uses (dns.c resolves it from dns_hostsfile)
    local named = bp.services:insert { name = "named", host = "ps-svc.test", port = P[1] }
    bp.routes:insert { service = named, paths = { "/named" } }
    local up = bp.upstreams:insert { name = "ps-up" }
    bp.targets:insert { upstream = up, target = "127.0.0.1:" .. P[1], weight = 100 }
    bp.targets:insert { upstream = up, target = "127.0.0.1:" .. P[2], weight = 100 }
    local half = bp.upstreams:insert { name = "ps-half" }
    bp.targets:insert { upstream = half, target = "127.0.0.1:" .. DEAD, weight = 100 }
    bp.targets:insert { upstream = half, target = "127.0.0.1:" .. P[3], weight = 100 }
    bp.plugins:insert { name = "ps-service" }
    assert(helpers.start_kong {
      database = "off",
      nginx_worker_processes = 1,
      plugins = "bundled,ps-service",
      lua_package_path = PLUGINS_PATH,
      dns_hostsfile = HOSTS,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    for i, pid in pairs(pids) do targets.stop(pid, P[i]) end
    os.remove(HOSTS)
  end)

  describe("set_upstream", function()
    it("balances the request over the named Upstream's targets", function()
      local seen = {}
      for _ = 1, 10 do
        local res, body, port = get("/ps/x", { ["X-Ps-Upstream"] = "ps-up" })
        assert.equal(200, res.status)
        seen[port] = (seen[port] or 0) + 1
        -- the Host is the target's, as for a service naming the upstream
        assert.equal("127.0.0.1:" .. port, cjson.decode(body).headers.host)
      end
      assert.equal(5, seen[P[1]])
      assert.equal(5, seen[P[2]])
    end)

    it("returns Kong's error for an unknown Upstream", function()
      local res, body = get("/ps/x", { ["X-Ps-Upstream"] = "nope" })
      assert.equal(400, res.status)
      assert.equal("could not find an Upstream named 'nope'", cjson.decode(body).message)
    end)
  end)

  describe("set_target", function()
    it("sends the request to host:port, with host as the Host header", function()
      local res, body, port = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[3] })
      assert.equal(200, res.status)
      assert.equal(P[3], port)
      assert.equal("127.0.0.1", cjson.decode(body).headers.host)
    end)

    it("works from rewrite too and beats the service's upstream", function()
      local res, _, port = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[2],
                                          ["X-Ps-In-Rewrite"] = "1" })
      assert.equal(200, res.status)
      assert.equal(P[2], port)
    end)

    it("resolves localhost, and a name of the config through the resolver", function()
      local res, body, port = get("/ps/x", { ["X-Ps-Target"] = "localhost:" .. P[1] })
      assert.equal(200, res.status)
      assert.equal(P[1], port)
      assert.equal("localhost", cjson.decode(body).headers.host)
      res, body, port = get("/ps/x", { ["X-Ps-Target"] = "ps-svc.test:" .. P[3] })
      assert.equal(200, res.status)
      assert.equal(P[3], port)
      assert.equal("ps-svc.test", cjson.decode(body).headers.host)
    end)

    it("fails a name it cannot resolve with Kong's 500", function()
      local res, body = get("/ps/x", { ["X-Ps-Target"] = "no-such.invalid:" .. P[1] })
      assert.equal(500, res.status)
      assert.matches("failed the initial dns/balancer resolve for 'no-such.invalid' with: ",
                     cjson.decode(body).message, 1, true)
    end)

    it("lasts one request: the next on the same connection goes to the service", function()
      local c = helpers.proxy_client(10000)
      local _, _, port = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[1] }, c)
      assert.equal(P[1], port)
      _, _, port = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[2] }, c)
      assert.equal(P[2], port) -- not P[1]'s pooled connection
      local res, _, port3 = get("/ps/x", nil, c)
      assert.equal(200, res.status)
      assert.equal(helpers.mock_upstream_port, port3)
      c:close()
    end)
  end)

  describe("set_retries", function()
    it("overrides the service's retries", function()
      -- round-robin over a dead target and a live one, the service's retries 0:
      -- every other request fails without the override
      local failed = 0
      for _ = 1, 4 do
        local res = get("/ps/x", { ["X-Ps-Upstream"] = "ps-half" })
        if res.status == 502 then failed = failed + 1 end
      end
      assert.equal(2, failed)
      for _ = 1, 4 do
        local res, _, port = get("/ps/x", { ["X-Ps-Upstream"] = "ps-half",
                                            ["X-Ps-Retries"] = "1" })
        assert.equal(200, res.status)
        assert.equal(P[3], port)
      end
    end)

    it("0 stops at the first failure", function()
      local res = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. DEAD,
                                 ["X-Ps-Retries"] = "0" })
      assert.equal(502, res.status)
    end)
  end)

  describe("set_timeouts", function()
    it("overrides the service's read timeout", function()
      -- P[4] answers after 3 s; the service waits 60 s, the override 100 ms
      local res = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[4],
                                 ["X-Ps-Timeouts"] = "1000,1000,100" })
      assert.equal(504, res.status)
      res = get("/ps/x", { ["X-Ps-Target"] = "127.0.0.1:" .. P[4] })
      assert.equal(200, res.status)
    end)
  end)

  describe("arguments and phases", function()
    it("refuses bad arguments with Kong's messages", function()
      local res, body = get("/ps/x", { ["X-Ps-Errors"] = "1" })
      assert.equal(200, res.status)
      local json = cjson.decode(body)
      assert.equal("host must be a string", json.upstream_type)
      assert.equal("host must be a string", json.target_host)
      assert.equal("port must be an integer", json.target_port)
      assert.equal("port must be an integer between 0 and 65535: given -1", json.target_range)
      assert.equal("retries must be an integer", json.retries_type)
      assert.equal("retries must be an integer between 0 and 32767: given 32768",
                   json.retries_range)
      assert.equal("connect_timeout must be an integer", json.connect)
      assert.equal("write_timeout must be an integer between 1 and 2147483646: given 2147483647",
                   json.write)
      assert.equal("read_timeout must be an integer between 1 and 2147483646: given 0", json.read)
      assert.equal("scheme must be a string", json.scheme_type)
      assert.equal("invalid scheme: ftp", json.scheme_bad)
      assert.equal("argument must be a boolean", json.tls_verify)
      assert.equal("argument must be a number", json.tls_depth)
      assert.equal("argument must be a resty.openssl.x509.store object", json.store_type)
      assert.matches("set_tls_verify_store is not supported: resty.openssl.x509.store is not "
                     .. "shipped", json.store, 1, true)
      assert.equal("chain must be a parsed cdata object", json.cert_chain)
      assert.equal("key must be a parsed cdata object", json.cert_key)
    end)

    it("keeps set_upstream, set_retries and set_timeouts to access", function()
      local _, body = get("/ps/x", { ["X-Ps-Rewrite-Errors"] = "1" })
      local json = cjson.decode(body)
      local msg = "function cannot be called in rewrite phase (only in: access)"
      assert.equal(msg, json.set_upstream)
      assert.equal(msg, json.set_retries)
      assert.equal(msg, json.set_timeouts)
    end)
  end)
end)

describe("kong.service (scheme and TLS towards the upstream)", function()
  local DIR = helpers.test_conf.prefix .. "-ps-certs"
  local TP = { tls.upstream_port(11), tls.upstream_port(12), tls.upstream_port(13) }
  local tpids, plain_pid = {}, nil
  local client

  lazy_setup(function()
    local up_ca = tls.make_ca(DIR, "up-ca")
    local other_ca = tls.make_ca(DIR, "other-ca")
    local client_ca = tls.make_ca(DIR, "client-ca")
    local leaf = tls.make_cert(DIR, "upstream", { cn = "localhost", ca = up_ca,
                                                  san = "DNS:localhost,IP:127.0.0.1" })
    local inter = tls.make_cert(DIR, "inter", { cn = "inter", ca = up_ca, is_ca = true })
    local deep = tls.make_cert(DIR, "deep", { cn = "localhost", ca = inter, chain = true,
                                              san = "DNS:localhost" })
    client = tls.make_cert(DIR, "ps-client", { cn = "ps-client", ca = client_ca })
    tpids[1] = tls.start_upstream(TP[1], leaf)
    tpids[2] = tls.start_upstream(TP[2], leaf, { ca = client_ca })
    tpids[3] = tls.start_upstream(TP[3], deep)
    plain_pid = targets.start(P[1])
    local bp = helpers.get_db_utils("off", nil, { "ps-service" })
    local ca_row = bp.ca_certificates:insert { cert = up_ca.pem }
    local other_row = bp.ca_certificates:insert { cert = other_ca.pem }
    local function svc(name, fields)
      fields.name = name
      fields.retries = 0
      local s = bp.services:insert(fields)
      bp.routes:insert { service = s, paths = { "/" .. name } }
    end
    -- plain http to the TLS port unless set_scheme("https")
    svc("plain", { protocol = "http", host = "localhost", port = TP[1], read_timeout = 1000 })
    -- https to a plain port unless set_scheme("http")
    svc("tls-to-plain", { protocol = "https", host = "127.0.0.1", port = P[1],
                          connect_timeout = 1000 })
    -- verification off, with a CA that does not sign the upstream
    svc("other-ca", { protocol = "https", host = "localhost", port = TP[1],
                      ca_certificates = { other_row.id } })
    svc("right-ca", { protocol = "https", host = "localhost", port = TP[3], tls_verify = true,
                      ca_certificates = { ca_row.id } })
    svc("mtls", { protocol = "https", host = "localhost", port = TP[2] })
    bp.plugins:insert { name = "ps-service" }
    assert(helpers.start_kong {
      database = "off",
      nginx_worker_processes = 1,
      plugins = "bundled,ps-service",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    for _, pid in pairs(tpids) do tls.stop_upstream(pid) end
    targets.stop(plain_pid, P[1])
  end)

  it("set_scheme switches the request to https or to http", function()
    local res, _, port = get("/plain/x", { ["X-Ps-Scheme"] = "https" })
    assert.equal(200, res.status)
    assert.equal(TP[1], port)
    assert.equal("localhost", res.headers["X-Echo-Sni"])
    res = get("/plain/x") -- plain HTTP to a TLS server: no HTTP answer
    assert.is_true(res.status == 502 or res.status == 504)
    res, _, port = get("/tls-to-plain/x", { ["X-Ps-Scheme"] = "http" })
    assert.equal(200, res.status)
    assert.equal(P[1], port)
    res = get("/tls-to-plain/x") -- a TLS handshake with a plain server
    assert.is_true(res.status == 502 or res.status == 504)
  end)

  it("set_tls_verify turns verification on for one request, even on a pooled address",
     function()
    local c = helpers.proxy_client(10000)
    for _ = 1, 2 do
      -- the first leaves an unverified connection in the pool: the second
      -- must not take it
      assert.equal(200, get("/other-ca/x", nil, c).status)
      assert.equal(502, get("/other-ca/x", { ["X-Ps-Tls-Verify"] = "on" }, c).status)
    end
    c:close()
  end)

  it("set_tls_verify_depth limits the chain for one request", function()
    assert.equal(200, get("/right-ca/x").status)
    assert.equal(502, get("/right-ca/x", { ["X-Ps-Tls-Depth"] = "0" }).status)
    assert.equal(200, get("/right-ca/x", { ["X-Ps-Tls-Verify"] = "off",
                                           ["X-Ps-Tls-Depth"] = "0" }).status)
  end)

  it("set_tls_cert_key presents a client certificate (resty.openssl objects)", function()
    local path = client.crt:gsub("%.crt$", "")
    assert.equal(client.key, path .. ".key")
    local c = helpers.proxy_client(10000)
    for _ = 1, 2 do
      local res = get("/mtls/x", { ["X-Ps-Cert"] = path }, c)
      assert.equal(200, res.status)
      assert.matches("CN=ps-client", res.headers["X-Echo-Client-Cert"], 1, true)
      -- without: the pooled connection that presented it is not reused
      assert.equal(502, get("/mtls/x", nil, c).status)
    end
    c:close()
  end)
end)
