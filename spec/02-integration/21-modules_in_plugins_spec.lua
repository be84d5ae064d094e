-- lua-resty-string, lua-resty-openssl and ngx.base64 as plugins use them, in
-- a request through the real binary; expected values come from the openssl
-- command line. A plugin requiring a module tollgate does not ship is refused
-- at start, naming the module.
local helpers = require "spec.helpers"
local scratch = require "spec.helpers.scratch"
local cjson = require "cjson"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"
local SECRET = "s3cr3t"

local tmp

-- base64url without padding of a command's binary output
local function b64url_of(cmd)
  return (tmp:out(cmd .. " | basenc --base64url -w0"):gsub("=", ""))
end

local function get(path, headers)
  local client = helpers.proxy_client()
  local res = assert(client:get(path, { headers = headers }))
  local body = res:read_body()
  client:close()
  return res, body
end

describe("crypto modules in a plugin", function()
  lazy_setup(function()
    tmp = scratch.new()
    assert(tmp:sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem"
                  .. " -days 10 -subj '/O=Tollgate/CN=client.test' -set_serial 0xBEEF"
                  .. " 2>/dev/null && openssl pkey -in key.pem -pubout -out pub.pem"))
    local bp = helpers.get_db_utils("off", nil, { "m-crypto" })
    local s = bp.services:insert { name = "crypto" }
    local r = bp.routes:insert { service = s, paths = { "/m" } }
    bp.plugins:insert { name = "m-crypto", route = r,
                        config = { secret = SECRET, public_key = tmp:read("pub.pem") } }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,m-crypto",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    tmp:remove()
  end)

  it("digests the path with resty.sha256, resty.md5 and resty.openssl.digest", function()
    local res, body = get("/m/some/path")
    assert.equal(200, res.status)
    local seen = cjson.decode(body).headers
    local sha256 = tmp:out("printf /m/some/path | openssl dgst -sha256 -r"):match("^%x+")
    local md5 = tmp:out("printf /m/some/path | openssl dgst -md5 -r"):match("^%x+")
    assert.equal(sha256, seen["x-path-digest"])
    assert.equal(md5, seen["x-path-md5"])
    assert.equal(sha256, res.headers["x-path-sha256"])
    assert.equal("32", res.headers["x-random-bytes"])
    assert.is_nil(seen["x-signature-ok"])
  end)

  it("accepts an HMAC signature (resty.openssl.hmac + ngx.base64) and refuses a bad one",
     function()
    local sig = b64url_of("printf /m/signed | openssl dgst -sha256 -hmac " .. SECRET .. " -binary")
    local res, body = get("/m/signed", { ["X-Signature"] = sig })
    assert.equal(200, res.status)
    assert.equal("1", cjson.decode(body).headers["x-signature-ok"])
    res, body = get("/m/signed", { ["X-Signature"] = sig .. "x" })
    assert.equal(401, res.status)
    assert.same({ message = "bad signature" }, cjson.decode(body))
  end)

  it("verifies an RSA signature with resty.openssl.pkey", function()
    local sig = b64url_of("printf /m/key | openssl dgst -sha256 -sign key.pem")
    local res, body = get("/m/key", { ["X-Key-Signature"] = sig })
    assert.equal(200, res.status)
    assert.equal("1", cjson.decode(body).headers["x-key-signature-ok"])
    res = get("/m/other", { ["X-Key-Signature"] = sig })
    assert.equal(403, res.status)
  end)

  it("reads a certificate with resty.openssl.x509", function()
    local cert = b64url_of("cat cert.pem")
    local res, body = get("/m/cert", { ["X-Client-Cert"] = cert })
    assert.equal(200, res.status)
    local seen = cjson.decode(body).headers
    assert.equal("client.test", seen["x-cert-cn"])
    assert.equal("BEEF", seen["x-cert-serial"])
    local na = tmp:out("openssl x509 -in cert.pem -noout -enddate"):match("=([^\n]+)")
    assert.equal(tmp:out("date -u -d '" .. na .. "' +%s"):match("%d+"), seen["x-cert-not-after"])
    res, body = get("/m/cert", { ["X-Client-Cert"] = "bm90IGEgY2VydA" })
    assert.equal(400, res.status)
    assert.matches("^x509.new: ", cjson.decode(body).message)
  end)
end)

describe("a plugin requiring a module tollgate does not ship", function()
  it("is refused at start with a message naming the module", function()
    helpers.get_db_utils("off")
    local ok, err = helpers.start_kong {
      database = "off",
      plugins = "bundled,m-not-shipped",
      lua_package_path = PLUGINS_PATH,
    }
    helpers.stop_kong()
    assert.is_nil(ok)
    assert.matches("m-not-shipped", err, 1, true)
    assert.matches("module 'resty.openssl.x509.csr' is not shipped by tollgate", err, 1, true)
  end)
end)
