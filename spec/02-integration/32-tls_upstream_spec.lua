-- TLS towards upstreams: service protocol https, tls_verify with
-- ca_certificates and tls_verify_depth, client_certificate (mTLS), the SNI
-- Kong sends, 502 with the reason in the error log when verification fails,
-- and keepalive pools that never mix TLS parameters. The upstreams are
-- tg_echo_server in its TLS mode (X-Echo-Sni, X-Echo-Client-Cert).
local helpers = require "spec.helpers"
local tls = require "spec.helpers.tls"
local pl_file = require "pl.file"

local PREFIX = helpers.test_conf.prefix
local DIR = PREFIX .. "-upstream-certs"

local function get(path, headers)
  local c = helpers.proxy_client()
  local res = c:get(path, { headers = headers })
  c:close()
  return res
end

describe("https services", function()
  local pids = {}

  lazy_setup(function()
    local up_ca = tls.make_ca(DIR, "up-ca")
    local other_ca = tls.make_ca(DIR, "other-ca")
    local client_ca = tls.make_ca(DIR, "client-ca")
    local leaf = tls.make_cert(DIR, "upstream", { cn = "localhost", ca = up_ca,
                                                  san = "DNS:localhost,IP:127.0.0.1" })
    local client = tls.make_cert(DIR, "client", { cn = "tollgate-client", ca = client_ca })
    local inter = tls.make_cert(DIR, "inter", { cn = "inter", ca = up_ca, is_ca = true })
    local deep = tls.make_cert(DIR, "deep", { cn = "localhost", ca = inter, chain = true,
                                              san = "DNS:localhost" })
    local p0, p1, p2 = tls.upstream_port(0), tls.upstream_port(1), tls.upstream_port(2)
    pids[1] = tls.start_upstream(p0, leaf)
    pids[2] = tls.start_upstream(p1, leaf, { ca = client_ca })
    pids[3] = tls.start_upstream(p2, deep)

    local bp = helpers.get_db_utils("off")
    local ca_row = bp.ca_certificates:insert { cert = up_ca.pem }
    local other_row = bp.ca_certificates:insert { cert = other_ca.pem }
    local client_row = bp.certificates:insert { cert = client.pem, key = client.key_pem }
    local function svc(name, fields, route)
      fields.name = name
      fields.protocol = "https"
      fields.host = fields.host or "localhost"
      fields.port = fields.port or p0
      local s = bp.services:insert(fields)
      route = route or {}
      route.service = s
      route.paths = { "/" .. name }
      bp.routes:insert(route)
    end
    svc("noverify", {})
    svc("preserve", {}, { preserve_host = true })
    svc("by-ip", { host = "127.0.0.1" })
    svc("verify", { tls_verify = true, ca_certificates = { ca_row.id } })
    svc("verify-ip", { host = "127.0.0.1", tls_verify = true, ca_certificates = { ca_row.id } })
    svc("verify-other", { tls_verify = true, ca_certificates = { other_row.id }, retries = 0 })
    svc("verify-depth0", { port = p2, tls_verify = true, tls_verify_depth = 0,
                           ca_certificates = { ca_row.id }, retries = 0 })
    svc("verify-depth1", { port = p2, tls_verify = true, tls_verify_depth = 1,
                           ca_certificates = { ca_row.id }, retries = 0 })
    svc("verify-host", { tls_verify = true, ca_certificates = { ca_row.id }, retries = 0 },
        { preserve_host = true })
    svc("mtls", { port = p1, client_certificate = client_row })
    svc("mtls-none", { port = p1, retries = 0 })
    assert(helpers.start_kong { worker_threads = 1 })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    for _, pid in ipairs(pids) do tls.stop_upstream(pid) end
  end)

  it("proxies to a TLS upstream without verification (tls_verify unset)", function()
    local res = get("/noverify/x")
    assert.equal(200, res.status)
    assert.equal("localhost", res.headers["X-Echo-Sni"])
  end)

  it("sends the service host as SNI, the request's host with preserve_host, none for an IP",
     function()
    local res = get("/preserve/x", { Host = "front.test:8443" })
    assert.equal(200, res.status)
    assert.equal("front.test", res.headers["X-Echo-Sni"])
    res = get("/by-ip/x")
    assert.equal(200, res.status)
    assert.equal("-", res.headers["X-Echo-Sni"])
  end)

  it("verifies against ca_certificates, by name and by IP", function()
    assert.equal(200, get("/verify/x").status)
    assert.equal(200, get("/verify-ip/x").status)
  end)

  it("answers 502 when the CA does not match, and says why in the error log", function()
    local res = get("/verify-other/x")
    assert.equal(502, res.status)
    assert.matches("An invalid response was received from the upstream server", res.body,
                   nil, true)
    helpers.pwait_until(function()
      local log = pl_file.read(PREFIX .. "/logs/error.log")
      assert.matches("certificate verify failed: unable to get local issuer certificate", log,
                     nil, true)
    end, 10)
  end)

  it("answers 502 when the chain is deeper than tls_verify_depth", function()
    -- leaf <- intermediate (sent by the upstream) <- the CA certificate
    assert.equal(200, get("/verify-depth1/x").status)
    assert.equal(502, get("/verify-depth0/x").status)
  end)

  it("answers 502 when the certificate does not name the host asked for", function()
    assert.equal(200, get("/verify-host/x", { Host = "localhost" }).status)
    assert.equal(502, get("/verify-host/x", { Host = "evil.test" }).status)
    helpers.pwait_until(function()
      assert.matches("hostname mismatch", pl_file.read(PREFIX .. "/logs/error.log"), nil, true)
    end, 10)
  end)

  it("presents client_certificate to an upstream that demands one (mTLS)", function()
    local res = get("/mtls/x")
    assert.equal(200, res.status)
    assert.matches("CN=tollgate-client", res.headers["X-Echo-Client-Cert"], nil, true)
    assert.equal(502, get("/mtls-none/x").status)
  end)

  it("streams large bodies both ways over TLS, to a TLS upstream", function()
    local data = string.rep("0123456789abcdef", 10 * 65536)
    local c = helpers.proxy_client(30000)
    local res = c:post("/noverify/up", { body = data })
    assert.equal(200, res.status)
    local json = require("cjson").decode(res.body)
    assert.equal(#data, json.body_length)
    assert.equal(helpers.adler32(data), json.body_adler32)
    res = c:get("/noverify/bytes/8000000")
    c:close()
    assert.equal(200, res.status)
    assert.equal(8000000, #res.body)
    local _, out = tls.run("curl -s --max-time 20 http://127.0.0.1:" .. helpers.test_conf.proxy_port
                           .. "/noverify/bytes/3000000 | wc -c")
    assert.equal("3000000", out:match("%d+"))
  end)

  it("never hands a pooled connection to a request with other TLS parameters", function()
    -- one worker: the unverified connection is pooled, and the verifying
    -- service to the same address must not take it
    for _ = 1, 3 do
      assert.equal(200, get("/noverify/x").status)
      assert.equal(502, get("/verify-other/x").status)
      assert.equal(200, get("/mtls/x").status)
      assert.equal(502, get("/mtls-none/x").status)
    end
  end)
end)

describe("client_ssl", function()
  local pid

  lazy_setup(function()
    local up_ca = tls.make_ca(DIR, "up-ca")
    local leaf = tls.make_cert(DIR, "upstream", { cn = "localhost", ca = up_ca,
                                                  san = "DNS:localhost,IP:127.0.0.1" })
    local client_ca = tls.make_ca(DIR, "client-ca")
    local global = tls.make_cert(DIR, "global-client", { cn = "global-client", ca = client_ca })
    local own = tls.make_cert(DIR, "own-client", { cn = "own-client", ca = client_ca })
    pid = tls.start_upstream(tls.upstream_port(3), leaf, { ca = client_ca })
    local bp = helpers.get_db_utils("off")
    local own_row = bp.certificates:insert { cert = own.pem, key = own.key_pem }
    local s1 = bp.services:insert { name = "global", protocol = "https", host = "localhost",
                                     port = tls.upstream_port(3) }
    bp.routes:insert { service = s1, paths = { "/global" } }
    local s2 = bp.services:insert { name = "own", protocol = "https", host = "localhost",
                                    port = tls.upstream_port(3), client_certificate = own_row }
    bp.routes:insert { service = s2, paths = { "/own" } }
    assert(helpers.start_kong { client_ssl = true, client_ssl_cert = global.crt,
                                client_ssl_cert_key = global.key })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    tls.stop_upstream(pid)
  end)

  it("presents client_ssl_cert to every TLS upstream; a service's client_certificate wins",
     function()
    local res = get("/global/x")
    assert.equal(200, res.status)
    assert.matches("CN=global-client", res.headers["X-Echo-Client-Cert"], nil, true)
    res = get("/own/x")
    assert.equal(200, res.status)
    assert.matches("CN=own-client", res.headers["X-Echo-Client-Cert"], nil, true)
  end)
end)
