-- The certificate phase: global plugins run during the handshake, with the
-- server name available (ngx.var.ssl_server_name), and kong.client.tls
-- (request_client_certificate, disable_session_reuse,
-- get_full_client_certificate_chain, set_client_verify) as in Kong.
-- spec/fixtures/custom_plugins/kong/plugins/tls-cert does the work.
local helpers = require "spec.helpers"
local tls = require "spec.helpers.tls"
local cjson = require "cjson"

local PREFIX = helpers.test_conf.prefix
local DIR = PREFIX .. "-cert-phase"
local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

describe("certificate phase", function()
  local client_ca, client

  lazy_setup(function()
    client_ca = tls.make_ca(DIR, "client-ca")
    client = tls.make_cert(DIR, "client", { cn = "phase-client", ca = client_ca })
    local bp = helpers.get_db_utils("off", nil, { "tls-cert" })
    local s = bp.services:insert { name = "echo" }
    bp.routes:insert { service = s, paths = { "/" } }
    bp.plugins:insert { name = "tls-cert", config = { ca_pem = client_ca.pem } }
    assert(helpers.start_kong {
      proxy_listen = tls.listen,
      worker_threads = 1,
      plugins = "bundled,tls-cert",
      lua_package_path = PLUGINS_PATH,
    })
  end)
  lazy_teardown(function() helpers.stop_kong(nil, true) end)

  local function info(sni, args)
    local status, body, err = tls.curl("/info", { sni = sni, args = args })
    assert.equal(200, status, err)
    return cjson.decode(body)
  end

  it("runs once per handshake, with the server name", function()
    local first = info("a.test")
    assert.equal("a.test", first.last_sni)
    assert.equal("ssl_cert", first.last_phase)
    assert.equal("TLSv1.3", first.protocol)
    local second = info("b.test")
    assert.equal("b.test", second.last_sni)
    assert.equal(first.calls + 1, second.calls)
    -- two requests on one connection: one handshake
    local _, out = tls.run("curl -sk --resolve c.test:" .. tls.port .. ":127.0.0.1 "
                           .. "https://c.test:" .. tls.port .. "/1 https://c.test:" .. tls.port
                           .. "/2")
    local a, b = out:match("^(%b{})(%b{})$")
    assert.equal(cjson.decode(a).calls, cjson.decode(b).calls)
  end)

  it("request_client_certificate: the chain reaches the request phases", function()
    local none = info("mtls.test")
    assert.equal(cjson.null, none.chain)
    assert.equal("NONE", none.verify)
    local with = info("mtls.test", "--cert " .. client.crt .. " --key " .. client.key)
    assert.matches("-----BEGIN CERTIFICATE-----", with.chain, nil, true)
    assert.equal(client.pem, with.chain)
    assert.matches("CN=phase-client", with.client_dn, nil, true)
    assert.matches("^FAILED:", with.verify) -- taken (optional_no_ca), not trusted
    -- the CA names the plugin gave are what the server asks for
    local out = tls.s_client("-servername mtls.test")
    assert.matches("Acceptable client certificate CA names\n[^\n]*CN ?= ?client%-ca", out)
    -- not in a request phase, with Kong's message
    assert.is_false(with.request_cert_in_access)
    -- the CA as a resty.openssl x509 object
    local x = info("mtls-x509.test", "--cert " .. client.crt .. " --key " .. client.key)
    assert.equal(client.pem, x.chain)
    assert.matches("Acceptable client certificate CA names\n[^\n]*CN ?= ?client%-ca",
                   tls.s_client("-servername mtls-x509.test"))
  end)

  it("a client that is not asked sends no certificate", function()
    local plain = info("a.test", "--cert " .. client.crt .. " --key " .. client.key)
    assert.equal(cjson.null, plain.chain)
    assert.equal("NONE", plain.verify)
  end)

  it("set_client_verify overrides ngx.var.ssl_client_verify", function()
    local got = info("mtls.test", "--cert " .. client.crt .. " --key " .. client.key
                                  .. " -H 'X-Set-Verify: SUCCESS'")
    assert.equal("SUCCESS", got.verify)
  end)

  it("disable_session_reuse: that session never resumes; others do", function()
    for _, case in ipairs { { "noreuse.test", false }, { "reuse.test", true } } do
      local sess = PREFIX .. "/sess-" .. case[1]
      os.remove(sess)
      assert.matches("Cipher is", tls.s_client("-tls1_2 -servername " .. case[1] ..
                                               " -sess_out " .. sess))
      if case[2] then
        local again = tls.s_client("-tls1_2 -servername " .. case[1] .. " -sess_in " .. sess)
        assert.matches("Reused, TLSv1.2", again)
      elseif io.open(sess) then
        -- a session the client kept must not resume
        local again = tls.s_client("-tls1_2 -servername " .. case[1] .. " -sess_in " .. sess)
        assert.matches("New, TLSv1.2", again)
      end
      -- s_client -reconnect offers the session it got each time again
      local re = tls.s_client("-tls1_2 -reconnect -servername " .. case[1], "sleep 1")
      if case[2] then
        assert.matches("Reused, TLSv1.2", re)
      else
        assert.matches("New, TLSv1.2", re)
        assert.not_matches("Reused, TLSv1.2", re)
      end
    end
  end)

  it("a plugin that fails in the certificate phase fails the handshake; serves on", function()
    local status, _, err = tls.curl("/info", { sni = "fail.test" })
    assert.falsy(status == 200)
    assert.matches("alert", err)
    helpers.pwait_until(function()
      assert.matches("refusing fail.test", require("pl.file").read(PREFIX .. "/logs/error.log"),
                     nil, true)
    end, 10)
    assert.equal("a.test", info("a.test").last_sni)
  end)

  describe("a certificate phase that yields", function()
    it("parks the handshake and goes on with it", function()
      local before = info("a.test").parked
      local json = info("sleep-a.test")
      assert.equal("sleep-a.test", json.last_sni)
      assert.equal(before + 1, json.parked)
      assert.equal("TLSv1.3", json.protocol)
    end)

    it("what the phase asks after the sleep still shapes the handshake", function()
      local x = info("sleep-mtls.test", "--cert " .. client.crt .. " --key " .. client.key)
      assert.equal(client.pem, x.chain)
      assert.matches("CN=phase-client", x.client_dn, nil, true)
    end)

    it("an error after the sleep fails the handshake; serves on", function()
      local status, _, err = tls.curl("/info", { sni = "sleep-fail.test" })
      assert.falsy(status == 200)
      assert.matches("alert", err)
      assert.equal("a.test", info("a.test").last_sni)
    end)

    it("other connections are served while one handshake is parked", function()
      -- a client whose handshake parks for 3 s, in the background
      local out = os.tmpname()
      os.execute("(curl -sk --max-time 20 --resolve slow.test:" .. tls.port ..
                 ":127.0.0.1 https://slow.test:" .. tls.port .. "/info > " .. out ..
                 " 2>&1; echo done >> " .. out .. ") &")
      -- its phase has started once the worker counted the call
      local start_calls = info("a.test").calls
      helpers.wait_until(function()
        return info("a.test").calls >= start_calls + 2 -- slow.test's, and this one's
      end, 10)
      -- meanwhile the single worker answers others, TLS and plain
      local fresh = info("b.test")
      assert.equal("b.test", fresh.last_sni)
      local res = assert(helpers.proxy_client():get("/info"))
      assert.equal(200, res.status)
      -- and the parked one completes
      local body
      helpers.wait_until(function()
        body = require("pl.file").read(out)
        return body and body:find("done", 1, true)
      end, 20)
      os.remove(out)
      assert.matches('"last_sni":"', body, nil, true)
      assert.matches('"parked":%d+', body)
    end)

    it("a client that goes away during the parked phase costs nothing", function()
      os.execute("timeout 1 curl -sk --resolve slow.test:" .. tls.port .. ":127.0.0.1 " ..
                 "https://slow.test:" .. tls.port .. "/info > /dev/null 2>&1")
      assert.equal("a.test", info("a.test").last_sni)
    end)
  end)
end)
