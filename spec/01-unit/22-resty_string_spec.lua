-- lua-resty-string's modules (resty.string, resty.md5, resty.sha*,
-- resty.random), ngx.base64, and the ngx shim's digests, all over libcrypto.
local shim = require "tollgate.ngx_shim"

-- known answers (FIPS 180 / RFC 1321 test vectors for "abc")
local ABC = {
  md5 = "900150983cd24fb0d6963f7d28e17f72",
  sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d",
  sha224 = "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
  sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  sha384 = "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
           .. "8086072ba1e7cc2358baeca134c825a7",
  sha512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
           .. "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
}

describe("resty.string", function()
  local str = require "resty.string"

  it("to_hex gives the lower-case hex of any bytes", function()
    assert.equal("00ff10616263", str.to_hex("\0\255\16abc"))
    assert.equal("", str.to_hex(""))
  end)

  it("atoi reads the leading decimal integer as C's atoi", function()
    assert.equal(42, str.atoi("42"))
    assert.equal(-7, str.atoi("  -7xyz"))
    assert.equal(0, str.atoi("abc"))
  end)
end)

for alg, hex in pairs(ABC) do
  describe("resty." .. alg, function()
    local mod = require("resty." .. alg)
    local to_hex = require("resty.string").to_hex

    it("new/update/final give the digest of the concatenated updates", function()
      local d = assert(mod:new())
      assert.is_true(d:update("a"))
      assert.is_true(d:update("bc"))
      assert.equal(hex, to_hex(d:final()))
    end)

    it("reset starts over", function()
      local d = assert(mod:new())
      d:update("garbage")
      assert.is_true(d:reset())
      d:update("abc")
      assert.equal(hex, to_hex(d:final()))
    end)

    it("agrees with the openssl command line", function()
      local f = assert(io.popen("printf 'hello world' | openssl dgst -" .. alg .. " -r"))
      local want = f:read("*l"):match("^(%x+)")
      f:close()
      local d = mod:new()
      d:update("hello world")
      assert.equal(want, to_hex(d:final()))
    end)
  end)
end

describe("resty.random", function()
  local random = require "resty.random"

  it("bytes returns `len` bytes, strong or not, different each time", function()
    local a, b = random.bytes(32), random.bytes(32, true)
    assert.equal(32, #a)
    assert.equal(32, #b)
    assert.not_equal(a, b)
    assert.equal("", random.bytes(0))
  end)

  it("bytes refuses a bad length with nil", function()
    assert.is_nil(random.bytes(-1))
    assert.is_nil(random.bytes("x"))
  end)
end)

describe("ngx.base64", function()
  local b64 = require "ngx.base64"

  it("encode_base64url uses - and _ without padding", function()
    assert.equal("-__9_A", b64.encode_base64url("\251\255\253\252"))
    assert.equal("YQ", b64.encode_base64url("a"))
    assert.equal("", b64.encode_base64url(""))
  end)

  it("decode_base64url accepts unpadded input and refuses the standard alphabet", function()
    assert.equal("\251\255\253\252", b64.decode_base64url("-__9_A"))
    assert.equal("a", b64.decode_base64url("YQ"))
    local res, err = b64.decode_base64url("+/79")
    assert.is_nil(res)
    assert.equal("invalid input", err)
    assert.is_nil(b64.decode_base64url("Y"))
  end)

  it("raises on non-string arguments as lua-resty-core", function()
    assert.has_error(function() b64.encode_base64url(1) end, "string argument only")
    assert.has_error(function() b64.decode_base64url(nil) end, "string argument only")
  end)
end)

describe("ngx shim digests over libcrypto and zlib", function()
  local ngx = shim.new()

  it("md5, md5_bin and sha1_bin", function()
    assert.equal(ABC.md5, ngx.md5("abc"))
    assert.equal(16, #ngx.md5_bin("abc"))
    assert.equal(ABC.sha1, require("resty.string").to_hex(ngx.sha1_bin("abc")))
  end)

  it("hmac_sha1 matches RFC 2202 and long keys", function()
    local to_hex = require("resty.string").to_hex
    assert.equal("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
                 to_hex(ngx.hmac_sha1("Jefe", "what do ya want for nothing?")))
    assert.equal("aa4ae5e15272d00e95705637ce8a3b55ed402112",
                 to_hex(ngx.hmac_sha1(("\170"):rep(80),
                                      "Test Using Larger Than Block-Size Key - Hash Key First")))
  end)

  it("crc32_short and crc32_long are zlib's CRC-32", function()
    assert.equal(907060870, ngx.crc32_short("hello"))
    assert.equal(907060870, ngx.crc32_long("hello"))
    assert.equal(0, ngx.crc32_long(""))
  end)

  it("encode_base64 pads unless told not to; decode_base64 follows nginx", function()
    assert.equal("YWI=", ngx.encode_base64("ab"))
    assert.equal("YWI", ngx.encode_base64("ab", true))
    assert.equal("", ngx.encode_base64(nil))
    assert.equal("ab", ngx.decode_base64("YWI="))
    assert.equal("ab", ngx.decode_base64("YWI"))
    assert.equal("a", ngx.decode_base64("YQ==ignored after the padding"))
    assert.is_nil(ngx.decode_base64("YW I="))
    assert.is_nil(ngx.decode_base64("Y"))
    local big = ("\0\1\2\255"):rep(10000)
    assert.equal(big, ngx.decode_base64(ngx.encode_base64(big)))
  end)
end)
