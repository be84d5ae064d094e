-- TLS towards clients: the `ssl` flag of proxy_listen, the default
-- self-signed RSA and ECDSA pair kept in the prefix, ssl_cert/ssl_cert_key,
-- ssl_protocols and ssl_cipher_suite, session resumption, ALPN (http/1.1
-- only), https as the request's scheme, and hostile handshakes. Real clients:
-- openssl s_client and curl --resolve.
local helpers = require "spec.helpers"
local tls = require "spec.helpers.tls"
local cjson = require "cjson"
local pl_file = require "pl.file"
local pl_path = require "pl.path"
local socket = require "socket"

local PREFIX = helpers.test_conf.prefix

local function start(env)
  local bp = helpers.get_db_utils("off")
  local s = bp.services:insert { name = "echo" }
  bp.routes:insert { service = s, paths = { "/" } }
  env = env or {}
  env.proxy_listen = env.proxy_listen or tls.listen
  env.worker_threads = env.worker_threads or 1
  assert(helpers.start_kong(env))
end

describe("ssl listener with the default certificates", function()
  lazy_setup(function() start() end)
  lazy_teardown(function() helpers.stop_kong() end)

  it("generates an RSA and an ECDSA pair into <prefix>/ssl, keys private", function()
    for _, name in ipairs { "kong-default", "kong-default-ecdsa" } do
      local crt = PREFIX .. "/ssl/" .. name .. ".crt"
      local key = PREFIX .. "/ssl/" .. name .. ".key"
      assert.truthy(pl_path.isfile(crt), crt)
      assert.truthy(pl_path.isfile(key), key)
      local _, out = tls.run("stat -c %a " .. helpers.shell_quote(key))
      assert.equal("600", out:match("%d+"))
      local _, text = tls.run("openssl x509 -noout -subject -enddate -ext basicConstraints -in "
                              .. helpers.shell_quote(crt))
      assert.matches("CN ?= ?localhost", text)
      assert.matches("CA:FALSE", text)
      local year = tonumber(text:match("notAfter=%a+%s+%d+%s+[%d:]+%s+(%d+)"))
      assert.truthy(year >= tonumber(os.date("!%Y")) + 19, text)
    end
    local _, rsa = tls.run("openssl x509 -noout -text -in " .. PREFIX .. "/ssl/kong-default.crt")
    assert.matches("rsaEncryption", rsa)
    assert.matches("2048 bit", rsa)
    local _, ec = tls.run("openssl x509 -noout -text -in " .. PREFIX
                          .. "/ssl/kong-default-ecdsa.crt")
    assert.matches("prime256v1", ec)
  end)

  it("proxies over TLS; the upstream hears X-Forwarded-Proto https", function()
    local status, body = tls.curl("/anything")
    assert.equal(200, status)
    local json = cjson.decode(body)
    assert.equal("https", json.headers["x-forwarded-proto"])
    assert.equal(tostring(tls.port), json.headers["x-forwarded-port"])
  end)

  it("serves plain http on the other address still", function()
    local c = helpers.proxy_client()
    local res = c:get("/x")
    c:close()
    assert.equal(200, res.status)
    assert.equal("http", cjson.decode(res.body).headers["x-forwarded-proto"])
  end)

  it("serves the RSA or the ECDSA certificate as the client's signature algorithms ask", function()
    local ec = tls.s_client("-tls1_2 -sigalgs ECDSA+SHA256")
    assert.matches("Server public key is 256 bit", ec)
    local rsa = tls.s_client("-tls1_2 -sigalgs RSA+SHA256")
    assert.matches("Server public key is 2048 bit", rsa)
  end)

  it("offers ALPN http/1.1 only (h2 later), and refuses a client offering only h2", function()
    assert.matches("ALPN protocol: http/1.1", tls.s_client("-alpn h2,http/1.1"))
    local out = tls.s_client("-alpn h2")
    assert.matches("no application protocol", out)
    assert.is_nil(out:match("ALPN protocol: h2"))
  end)

  it("speaks TLS 1.2 and 1.3 by default, not 1.1", function()
    assert.equal("TLSv1.3", (tls.negotiated(tls.s_client("-tls1_3"))))
    assert.equal("TLSv1.2", (tls.negotiated(tls.s_client("-tls1_2"))))
    local old = tls.s_client("-tls1_1 -cipher DEFAULT@SECLEVEL=0")
    assert.is_nil(tls.negotiated(old))
    assert.matches("alert", old)
  end)

  it("resumes TLS 1.2 sessions (tickets) and TLS 1.3 sessions", function()
    for _, v in ipairs { "-tls1_2", "-tls1_3" } do
      local sess = PREFIX .. "/sess" .. v
      -- TLS 1.3 tickets arrive after the handshake: read an answer first
      assert.truthy(tls.negotiated(tls.s_client(v .. " -sess_out " .. sess)))
      local again = tls.s_client(v .. " -sess_in " .. sess)
      assert.matches("Reused, TLSv1", again, nil, v)
    end
  end)

  it("keeps a connection alive across requests", function()
    local _, out, err = tls.run("curl -sk -v --resolve localhost:" .. tls.port .. ":127.0.0.1 "
                           .. "https://localhost:" .. tls.port .. "/a https://localhost:"
                           .. tls.port .. "/b -o /dev/null -o /dev/null 2>&1")
    assert.matches("Re%-using existing connection", err .. out)
  end)

  it("streams a 20 MB upload and a 5 MB download", function()
    local file = PREFIX .. "/upload.bin"
    local data = string.rep("0123456789abcdef", 20 * 65536)
    pl_file.write(file, data)
    local status, body = tls.curl("/up", { args = "--data-binary @" .. file })
    assert.equal(200, status)
    local json = cjson.decode(body)
    assert.equal(#data, json.body_length)
    assert.equal(helpers.adler32(data), json.body_adler32)
    local st2, body2 = tls.curl("/bytes/5000000")
    assert.equal(200, st2)
    assert.equal(5000000, #body2)
  end)

  it("closes a connection that sends garbage instead of a ClientHello; serves on", function()
    local s = socket.tcp()
    s:settimeout(5)
    assert(s:connect("127.0.0.1", tls.port))
    s:send(string.rep("\22\3\1garbage!", 40))
    local data, err = s:receive("*a")
    s:close()
    assert.is_nil((data or "") ~= "" and data:match("HTTP/") or nil)
    assert.truthy(err == "closed" or data ~= nil, tostring(err))
    assert.equal(200, (tls.curl("/after-garbage")))
  end)

  it("closes a renegotiating TLS 1.2 connection without answering; serves on", function()
    local out = tls.s_client("-tls1_2",
      "sleep 0.5; echo R; sleep 1; printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; sleep 1")
    assert.matches("RENEGOTIATING", out)
    assert.is_nil(out:match("HTTP/1.1 200"))
    helpers.pwait_until(function()
      assert.matches("TLS error: client renegotiation refused",
                     pl_file.read(PREFIX .. "/logs/error.log"), nil, true)
    end, 10)
    assert.equal(200, (tls.curl("/after-renegotiation")))
  end)
end)

describe("ssl listener handshake timeout", function()
  lazy_setup(function() start { nginx_http_client_header_timeout = "1s" } end)
  lazy_teardown(function() helpers.stop_kong() end)

  it("closes a handshake that never finishes; serves on meanwhile", function()
    local stalled = socket.tcp()
    stalled:settimeout(10)
    assert(stalled:connect("127.0.0.1", tls.port))
    stalled:send("\22\3\1\0\200") -- a record header promising 128 bytes that never come
    assert.equal(200, (tls.curl("/during-stall")))
    local t0 = socket.gettime()
    local data, err = stalled:receive("*a")
    stalled:close()
    assert.equal("closed", err)
    assert.equal("", data or "")
    assert.truthy(socket.gettime() - t0 < 9)
  end)
end)

describe("ssl listener with ssl_cert/ssl_cert_key", function()
  local dir = PREFIX .. "-certs"
  local rsa, ec

  lazy_setup(function()
    rsa = tls.make_cert(dir, "rsa", { cn = "rsa.example" })
    ec = tls.make_cert(dir, "ec", { cn = "ec.example", ec = true })
    -- Kong takes a path, a PEM or its base64: the RSA certificate as base64
    local _, b64 = tls.run("openssl base64 -A -in " .. helpers.shell_quote(rsa.crt))
    start {
      ssl_cert = b64 .. "," .. ec.crt,
      ssl_cert_key = rsa.key .. "," .. ec.key,
      ssl_session_tickets = "off",
    }
  end)
  lazy_teardown(function() helpers.stop_kong() end)

  it("serves the configured RSA and ECDSA certificates and generates none", function()
    assert.equal("rsa.example", tls.served_cn("x.test", "-tls1_2 -sigalgs RSA+SHA256"))
    assert.equal("ec.example", tls.served_cn("x.test", "-tls1_2 -sigalgs ECDSA+SHA256"))
    assert.falsy(pl_path.exists(PREFIX .. "/ssl/kong-default.crt"))
  end)

  it("resumes from the session cache with ssl_session_tickets off", function()
    local sess = PREFIX .. "/sess-cache"
    local first = tls.s_client("-tls1_2 -sess_out " .. sess)
    assert.is_nil(first:match("TLS session ticket:"))
    assert.matches("Reused, TLSv1.2", tls.s_client("-tls1_2 -sess_in " .. sess))
  end)
end)

describe("ssl_cipher_suite and ssl_protocols", function()
  after_each(function() helpers.stop_kong() end)

  it("modern: TLS 1.3 only, whatever ssl_protocols says", function()
    start { ssl_cipher_suite = "modern", ssl_protocols = "TLSv1.2 TLSv1.3" }
    assert.equal("TLSv1.3", (tls.negotiated(tls.s_client("-tls1_3"))))
    assert.is_nil(tls.negotiated(tls.s_client("-tls1_2")))
  end)

  it("custom: ssl_protocols and ssl_ciphers apply", function()
    start { ssl_cipher_suite = "custom", ssl_protocols = "TLSv1.2",
            ssl_ciphers = "ECDHE-RSA-AES128-GCM-SHA256" }
    local proto, cipher = tls.negotiated(tls.s_client("-tls1_2 -sigalgs RSA+SHA256"))
    assert.equal("TLSv1.2", proto)
    assert.equal("ECDHE-RSA-AES128-GCM-SHA256", cipher)
    assert.is_nil(tls.negotiated(tls.s_client("-tls1_3")))
  end)

  it("ssl_dhparam: the suite's ffdhe2048 by default, a named group when set", function()
    start()
    local out = tls.s_client("-tls1_2 -sigalgs RSA+SHA256 -cipher DHE-RSA-AES128-GCM-SHA256")
    assert.equal("DHE-RSA-AES128-GCM-SHA256", select(2, tls.negotiated(out)))
    assert.matches("Server Temp Key: DH, 2048 bits", out, nil, true)
    helpers.stop_kong()
    start { ssl_dhparam = "ffdhe3072" }
    out = tls.s_client("-tls1_2 -sigalgs RSA+SHA256 -cipher DHE-RSA-AES128-GCM-SHA256")
    assert.matches("Server Temp Key: DH, 3072 bits", out, nil, true)
  end)

  it("intermediate: refuses a TLS 1.2 cipher outside the suite", function()
    start()
    assert.is_nil(tls.negotiated(tls.s_client("-tls1_2 -cipher AES128-SHA")))
    assert.equal("TLSv1.2", (tls.negotiated(tls.s_client("-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256"))))
  end)
end)

describe("ssl with proxy_protocol", function()
  lazy_setup(function()
    start { proxy_listen = helpers.test_conf.proxy_listen .. ", 127.0.0.1:" .. tls.port
                           .. " ssl proxy_protocol",
            real_ip_header = "proxy_protocol", trusted_ips = "127.0.0.1" }
  end)
  lazy_teardown(function() helpers.stop_kong() end)

  it("reads the PROXY header before the handshake", function()
    local _, out = tls.run("curl -sk --max-time 10 --haproxy-protocol https://127.0.0.1:"
                           .. tls.port .. "/pp")
    local json = cjson.decode(out)
    assert.equal("127.0.0.1", json.headers["x-real-ip"])
    assert.equal("https", json.headers["x-forwarded-proto"])
  end)
end)
