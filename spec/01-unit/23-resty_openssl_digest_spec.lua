-- resty.openssl.digest, .hmac, .rand and .version (lua-resty-openssl's API).
local to_hex = require("resty.string").to_hex
local b64 = require("tollgate.ngx_shim").encode_base64

local function openssl_cli(cmd)
  local f = assert(io.popen(cmd))
  local out = f:read("*a")
  f:close()
  return out
end

describe("resty.openssl.digest", function()
  local digest = require "resty.openssl.digest"

  it("new defaults to sha1 and final accepts a last part", function()
    local d = assert(digest.new())
    assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", to_hex(d:final("abc")))
  end)

  it("update takes several parts; the documented sha256 example", function()
    local d = assert(digest.new("SHA256"))
    assert.is_true(d:update("\240\159", "\166\162"))
    assert.equal("tWW/2P/uOa/yIV1gRJySJLsHq1xwg0E1RWCvEUDlla0=", b64(d:final()))
  end)

  it("reset starts over with the same algorithm", function()
    local d = assert(digest.new("sha512"))
    d:update("x")
    assert.is_true(d:reset())
    local want = openssl_cli("printf abc | openssl dgst -sha512 -r"):match("^(%x+)")
    assert.equal(want, to_hex(d:final("abc")))
  end)

  it("the null digest is empty", function()
    assert.equal("", assert(digest.new("null")):final("abc"))
  end)

  it("an unknown algorithm is nil and lua-resty-openssl's message", function()
    local d, err = digest.new("nope")
    assert.is_nil(d)
    assert.equal('digest.new: invalid digest type "nope"', err)
  end)

  it("istype and get_provider_name", function()
    local d = digest.new("md5")
    assert.is_true(digest.istype(d))
    assert.is_false(digest.istype({}))
    assert.equal("default", d:get_provider_name())
  end)
end)

describe("resty.openssl.hmac", function()
  local hmac = require "resty.openssl.hmac"

  it("the documented sha256 example, by update and by final", function()
    local h = assert(hmac.new("goose", "sha256"))
    assert.is_true(h:update("\240\159\166\162"))
    assert.equal("k2UcrRp25tj1Spff89mJF3fAVQ0lodq/tJT53EYXp0c=", b64(h:final()))
    assert.is_true(h:reset())
    assert.equal("k2UcrRp25tj1Spff89mJF3fAVQ0lodq/tJT53EYXp0c=", b64(h:final("\240\159\166\162")))
  end)

  it("defaults to sha1 (RFC 2202 case 2) and takes several parts", function()
    local h = assert(hmac.new("Jefe"))
    h:update("what do ya want ", "for nothing?")
    assert.equal("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", to_hex(h:final()))
  end)

  it("refuses an unknown digest or a missing key with nil, err", function()
    local h, err = hmac.new("k", "nope")
    assert.is_nil(h)
    assert.equal('hmac.new: invalid digest type "nope"', err)
    h, err = hmac.new(nil)
    assert.is_nil(h)
    assert.matches("hmac.new", err, 1, true)
  end)

  it("istype", function()
    assert.is_true(hmac.istype(hmac.new("k")))
    assert.is_false(hmac.istype(require("resty.openssl.digest").new()))
  end)
end)

describe("resty.openssl.mac", function()
  local mac = require "resty.openssl.mac"

  it("HMAC: the documented example, by update and by final, and reset", function()
    local m = assert(mac.new("goose", "HMAC", nil, "sha256"))
    assert.is_true(m:update("\240\159", "\166\162"))
    assert.equal("k2UcrRp25tj1Spff89mJF3fAVQ0lodq/tJT53EYXp0c=", b64(m:final()))
    assert.is_true(m:reset())
    assert.equal("k2UcrRp25tj1Spff89mJF3fAVQ0lodq/tJT53EYXp0c=", b64(m:final("\240\159\166\162")))
  end)

  it("CMAC over a cipher agrees with the openssl command line", function()
    local key = ("k"):rep(16)
    local want = openssl_cli("printf abc | openssl mac -cipher AES-128-CBC -macopt key:" .. key
                             .. " CMAC"):match("^(%x+)")
    local m = assert(mac.new(key, "CMAC", "aes-128-cbc"))
    assert.equal(want:lower(), to_hex(m:final("abc")))
  end)

  it("refuses an unknown algorithm, or neither cipher nor digest, with nil, err", function()
    local m, err = mac.new("k", "NOPE", nil, "sha256")
    assert.is_nil(m)
    assert.equal('mac.new: invalid mac type "NOPE"', err)
    m, err = mac.new("k", "HMAC")
    assert.is_nil(m)
    assert.equal("mac.new: expect either digest or cipher", err)
    m, err = mac.new("k", "HMAC", nil, "nope")
    assert.is_nil(m)
    assert.matches("^mac.new: ", err)
  end)

  it("istype and get_provider_name", function()
    local m = mac.new("k", "HMAC", nil, "sha1")
    assert.is_true(mac.istype(m))
    assert.is_false(mac.istype(require("resty.openssl.hmac").new("k")))
    assert.equal("default", m:get_provider_name())
  end)
end)

describe("generic parameters (gettable_params, settable_params, get_param, set_params)", function()
  it("on a digest: an XOF's output length", function()
    local d = assert(require("resty.openssl.digest").new("shake256"))
    assert.same({ { "xoflen", "unsigned integer (arbitrary size)" } }, d:settable_params())
    assert.equal("xoflen", d:settable_params(true)[1].key)
    assert.is_true(d:set_params({ xoflen = 20 }))
    local want = openssl_cli("printf abc | openssl dgst -shake256 -xoflen 20 -r"):match("^(%x+)")
    assert.equal(want, to_hex(d:final("abc")))
    local ok, err = d:set_params({ nope = 1 })
    assert.is_nil(ok)
    assert.equal('digest:set_params: unknown parameter "nope"', err)
  end)

  it("on a mac: its size", function()
    local m = require("resty.openssl.mac").new("k", "HMAC", nil, "sha384")
    assert.same({ "size", "unsigned integer (max 8 bytes large)" }, m:gettable_params()[1])
    assert.equal(48, m:get_param("size"))
    local v, err = m:get_param("nope")
    assert.is_nil(v)
    assert.equal('mac:get_param: unknown parameter "nope"', err)
  end)

  it("on a pkey: numbers and big numbers", function()
    local pkey = require "resty.openssl.pkey"
    local k = assert(pkey.new({ type = "EC", curve = "prime256v1" }))
    assert.equal(256, k:get_param("bits"))
    assert.equal(k:get_parameters().private:to_hex(), k:get_param("priv", 64, "bn"):to_hex())
    local rsa = assert(pkey.new({ type = "RSA", bits = 1024 }))
    assert.equal("65537", rsa:get_param("e", nil, "bn"):to_dec())
    assert.is_table(rsa:settable_params())
  end)
end)

describe("resty.openssl.rand", function()
  local rand = require "resty.openssl.rand"

  it("bytes gives `length` bytes from the public or private generator", function()
    local a, b = assert(rand.bytes(24)), assert(rand.bytes(24, true, 128))
    assert.equal(24, #a)
    assert.equal(24, #b)
    assert.not_equal(a, b)
  end)

  it("bytes refuses a non-number length with nil, err", function()
    local r, err = rand.bytes("x")
    assert.is_nil(r)
    assert.matches("rand.bytes", err, 1, true)
  end)
end)

describe("resty.openssl.version", function()
  local version = require "resty.openssl.version"

  it("reports the linked OpenSSL 3", function()
    assert.is_true(version.OPENSSL_3X)
    assert.is_true(version.OPENSSL_3_UP)
    assert.is_false(version.OPENSSL_111)
    local cli = openssl_cli("openssl version"):match("^OpenSSL (%S+)")
    assert.matches("^OpenSSL " .. cli:gsub("%p", "%%%0"), version.version_text)
    assert.equal(version.version_text, version.version(version.VERSION))
    assert.equal(3, math.floor(version.version_num / 0x10000000))
    assert.equal(".so", version.info(version.INFO_DSO_EXTENSION))
  end)
end)
