-- certificates and snis from the declarative config: the certificate is
-- chosen by SNI (exact, then *.suffix, then prefix.*, then the `*` SNI, then
-- the listener's default); bad certificates are refused with Kong's
-- messages; routes' `protocols` and `snis` take effect over TLS.
local helpers = require "spec.helpers"
local tls = require "spec.helpers.tls"
local cjson = require "cjson"
local pl_file = require "pl.file"

local PREFIX = helpers.test_conf.prefix
local DIR = PREFIX .. "-sni-certs"
local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local certs = {}
local function cert(name, opts)
  certs[name] = certs[name] or tls.make_cert(DIR, name, opts or { cn = name })
  return certs[name]
end

local function add_cert(bp, name, snis)
  local c = cert(name)
  local row = bp.certificates:insert { cert = c.pem, key = c.key_pem }
  for _, sni in ipairs(snis) do
    bp.snis:insert { name = sni, certificate = row }
  end
  return row
end

describe("certificates chosen by SNI", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "pdk-echo" })
    add_cert(bp, "exact", { "exact.test", "exact.wild.test" })
    add_cert(bp, "prefix", { "*.wild.test", "*.both.test" })
    add_cert(bp, "suffix", { "wild.*", "a.both.*", "only-suffix.*" })
    local s = bp.services:insert { name = "echo" }
    bp.routes:insert { service = s, paths = { "/any" } }
    bp.routes:insert { service = s, paths = { "/secure" }, protocols = { "https" } }
    bp.routes:insert { service = s, paths = { "/moved" }, protocols = { "https" },
                       https_redirect_status_code = 308 }
    bp.routes:insert { service = s, paths = { "/by-sni" }, snis = { "exact.test" },
                       protocols = { "https" } }
    local pdk = bp.routes:insert { service = s, paths = { "/pdk" } }
    bp.plugins:insert { name = "pdk-echo", route = pdk, config = {} }
    assert(helpers.start_kong {
      proxy_listen = tls.listen,
      plugins = "bundled,pdk-echo",
      lua_package_path = PLUGINS_PATH,
    })
  end)
  lazy_teardown(function() helpers.stop_kong() end)

  it("an exact name first", function()
    assert.equal("exact", tls.served_cn("exact.test"))
    assert.equal("exact", tls.served_cn("EXACT.test"))
    -- exact beats the *.wild.test it also matches
    assert.equal("exact", tls.served_cn("exact.wild.test"))
  end)

  it("then a leftmost wildcard (*.wild.test), before a rightmost one (wild.*)", function()
    assert.equal("prefix", tls.served_cn("x.wild.test"))
    assert.equal("prefix", tls.served_cn("a.both.test")) -- *.both.test and a.both.*
    assert.equal("suffix", tls.served_cn("only-suffix.example"))
    assert.equal("suffix", tls.served_cn("wild.example"))
  end)

  it("then the listener's default certificate", function()
    assert.equal("localhost", tls.served_cn("unknown.test"))
    assert.equal("localhost", tls.served_cn("test")) -- no *.test from a single label
    local out = tls.s_client("-noservername")
    assert.equal("localhost", out:match("subject=[^\n]-CN ?= ?([^,\n/]+)"))
  end)

  it("routes: protocols https answer over TLS; http gets 426 with Kong's body", function()
    assert.equal(200, (tls.curl("/secure")))
    local c = helpers.proxy_client()
    local res = c:get("/secure", { headers = { Accept = "application/json" } })
    c:close()
    assert.equal(426, res.status)
    assert.equal("Please use HTTPS protocol", cjson.decode(res.body).message)
    assert.equal("Upgrade", res.headers["Connection"])
    assert.equal("TLS/1.2, HTTP/1.1", res.headers["Upgrade"])
  end)

  it("routes: https_redirect_status_code redirects to https", function()
    local c = helpers.proxy_client()
    local res = c:get("/moved/x?y=1", { headers = { Host = "example.test" } })
    c:close()
    assert.equal(308, res.status)
    assert.equal("https://example.test/moved/x?y=1", res.headers["Location"])
  end)

  it("routes: snis match the client's SNI", function()
    assert.equal(200, (tls.curl("/by-sni", { sni = "exact.test" })))
    assert.equal(404, (tls.curl("/by-sni", { sni = "x.wild.test" })))
  end)

  it("kong.request.get_scheme() says https over TLS, http otherwise", function()
    local status, body = tls.curl("/pdk", { args = "-H 'X-Pdk-Op: request'" })
    assert.equal(200, status)
    assert.equal("https", cjson.decode(body).scheme)
    local c = helpers.proxy_client()
    local res = c:get("/pdk", { headers = { ["X-Pdk-Op"] = "request" } })
    c:close()
    assert.equal("http", cjson.decode(res.body).scheme)
  end)
end)

describe("a certificate with cert_alt", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off")
    local rsa = cert("dual-rsa")
    local ec = cert("dual-ec", { cn = "dual-ec", ec = true })
    local row = bp.certificates:insert { cert = rsa.pem, key = rsa.key_pem,
                                         cert_alt = ec.pem, key_alt = ec.key_pem }
    bp.snis:insert { name = "dual.test", certificate = row }
    local s = bp.services:insert { name = "echo" }
    bp.routes:insert { service = s, paths = { "/" } }
    assert(helpers.start_kong { proxy_listen = tls.listen })
  end)
  lazy_teardown(function() helpers.stop_kong() end)

  it("serves the RSA or the ECDSA one as the client can verify", function()
    assert.equal("dual-rsa", tls.served_cn("dual.test", "-tls1_2 -sigalgs RSA+SHA256"))
    assert.equal("dual-ec", tls.served_cn("dual.test", "-tls1_2 -sigalgs ECDSA+SHA256"))
  end)
end)

describe("the `*` SNI", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off")
    add_cert(bp, "exact", { "exact.test" })
    add_cert(bp, "catchall", { "*" })
    local s = bp.services:insert { name = "echo" }
    bp.routes:insert { service = s, paths = { "/" } }
    assert(helpers.start_kong { proxy_listen = tls.listen })
  end)
  lazy_teardown(function() helpers.stop_kong() end)

  it("serves names no other SNI claims; a client without SNI gets the default", function()
    assert.equal("exact", tls.served_cn("exact.test"))
    assert.equal("catchall", tls.served_cn("anything.test"))
    local out = tls.s_client("-noservername")
    assert.equal("localhost", out:match("subject=[^\n]-CN ?= ?([^,\n/]+)"))
  end)

  it("a reload with other certificates takes effect on new handshakes", function()
    local bp = helpers.get_db_utils("off")
    add_cert(bp, "suffix", { "exact.test" })
    local s = bp.services:insert { name = "echo" }
    bp.routes:insert { service = s, paths = { "/" } }
    local file = helpers.make_declarative_files(PREFIX .. "/declarative-2")
    local c = helpers.admin_client()
    local res = c:post("/config", { body = pl_file.read(file:match("^[^,]+")),
                                    headers = { ["Content-Type"] = "application/json" } })
    c:close()
    assert.truthy(res.status == 200 or res.status == 201, res.body)
    helpers.pwait_until(function()
      assert.equal("suffix", tls.served_cn("exact.test"))
    end, 10)
    assert.equal("localhost", tls.served_cn("anything.test"))
  end)
end)

describe("certificates refused at config time", function()
  local function parse(doc)
    local tmp = os.tmpname()
    local path = tmp .. ".json"
    os.remove(tmp)
    pl_file.write(path, cjson.encode(doc))
    local ok, err, out = helpers.kong_exec("config parse " .. helpers.shell_quote(path))
    os.remove(path)
    return ok, (err or "") .. (out or "")
  end

  it("a key that does not match its certificate", function()
    local ok, out = parse { _format_version = "3.0",
      certificates = { { cert = cert("exact").pem, key = cert("prefix").key_pem } } }
    assert.falsy(ok)
    assert.matches("certificate does not match key", out, nil, true)
  end)

  it("a bad PEM", function()
    local ok, out = parse { _format_version = "3.0",
      certificates = { { cert = "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n",
                         key = cert("exact").key_pem } } }
    assert.falsy(ok)
    assert.matches("in 'cert': invalid certificate", out, nil, true)
    ok, out = parse { _format_version = "3.0",
      certificates = { { cert = cert("exact").pem, key = "not a key" } } }
    assert.falsy(ok)
    assert.matches("in 'key': invalid key", out, nil, true)
  end)

  it("an SNI claimed twice", function()
    local ok, out = parse { _format_version = "3.0", certificates = {
      { cert = cert("exact").pem, key = cert("exact").key_pem, snis = { { name = "x.test" } } },
      { cert = cert("prefix").pem, key = cert("prefix").key_pem, snis = { { name = "x.test" } } },
    } }
    assert.falsy(ok)
    assert.matches("uniqueness violation: 'snis' entity with name set to 'x.test' already declared",
                   out, nil, true)
  end)
end)
