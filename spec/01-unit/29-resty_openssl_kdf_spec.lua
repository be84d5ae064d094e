-- resty.openssl.kdf (lua-resty-openssl's API), checked against the
-- documented examples and `openssl kdf`.
local kdf = require "resty.openssl.kdf"
local to_hex = require("resty.string").to_hex
local b64 = require("tollgate.ngx_shim").encode_base64

-- `openssl kdf` output ("AB:CD:...") as lower-case hex
local function cli(args)
  local f = assert(io.popen("openssl kdf " .. args .. " 2>&1"))
  local out = f:read("*a")
  f:close()
  return (out:gsub("[:%s]", ""):lower())
end

describe("resty.openssl.kdf", function()
  describe("the legacy kdf.derive(options)", function()
    it("PBKDF2 and scrypt give the documented keys", function()
      assert.equal("cDRFLQ7NWt+AP4i0TdBzog==", b64(assert(kdf.derive({
        type = kdf.PBKDF2, outlen = 16, pass = "1234567", md = "md5", pbkdf2_iter = 1000 }))))
      assert.equal("9giFtxace5sESmRb8qxuOw==", b64(assert(kdf.derive({
        type = kdf.SCRYPT, outlen = 16, pass = "1234567", scrypt_N = 1024, scrypt_r = 8,
        scrypt_p = 16 }))))
    end)

    it("HKDF and TLS1-PRF agree with openssl kdf", function()
      assert.equal(cli("-keylen 24 -kdfopt digest:SHA256 -kdfopt key:secret -kdfopt salt:salt"
                       .. " -kdfopt info:info HKDF"),
                   to_hex(assert(kdf.derive({ type = kdf.HKDF, outlen = 24, md = "sha256",
                                              hkdf_key = "secret", salt = "salt",
                                              hkdf_info = "info" }))))
      assert.equal(32, #assert(kdf.derive({ type = kdf.HKDF, md = "sha256", hkdf_key = "k",
                                             hkdf_mode = kdf.HKDEF_MODE_EXTRACT_ONLY })))
      assert.equal(cli("-keylen 20 -kdfopt digest:SHA256 -kdfopt secret:s -kdfopt seed:seed"
                       .. " TLS1-PRF"),
                   to_hex(assert(kdf.derive({ type = kdf.TLS1_PRF, outlen = 20, md = "sha256",
                                              tls1_prf_secret = "s",
                                              tls1_prf_seed = "seed" }))))
    end)

    it("refuses missing options with nil, err", function()
      local k, err = kdf.derive({ type = kdf.PBKDF2 })
      assert.is_nil(k)
      assert.equal('kdf.derive: "outlen" is required', err)
      k, err = kdf.derive({ type = kdf.HKDF, outlen = 16 })
      assert.is_nil(k)
      assert.equal('kdf.derive: "hkdf_key" is required', err)
      k, err = kdf.derive({ type = 12345, outlen = 16 })
      assert.is_nil(k)
      assert.equal("kdf.derive: unknown type 12345", err)
    end)
  end)

  describe("instances", function()
    it("derive with options, reset, set_params: the documented PBKDF2 example", function()
      local k = assert(kdf.new("PBKDF2"))
      assert.equal("cDRFLQ7NWt+AP4i0TdBzog==", b64(assert(k:derive(16, {
        pass = "1234567", iter = 1000, digest = "md5", salt = "" }))))
      assert.is_true(k:reset())
      assert.is_true(k:set_params({ iter = 1000, digest = "md5", salt = "" }))
      assert.equal("cDRFLQ7NWt+AP4i0TdBzog==", b64(assert(k:derive(16, { pass = "1234567" }))))
    end)

    it("HKDF mode as a number or a string, as openssl kdf", function()
      local want = cli("-keylen 16 -kdfopt digest:MD5 -kdfopt key:secret -kdfopt salt:salt"
                       .. " -kdfopt info:some\\ info -kdfopt mode:EXPAND_ONLY HKDF")
      local k = assert(kdf.new("HKDF"))
      assert.equal(want, to_hex(assert(k:derive(16, {
        digest = "md5", key = "secret", salt = "salt", info = "some info",
        mode = kdf.HKDEF_MODE_EXPAND_ONLY }))))
      assert.is_true(k:reset())
      assert.equal(want, to_hex(assert(k:derive(16, {
        digest = "md5", key = "secret", salt = "salt", info = "some info",
        mode = "EXPAND_ONLY" }))))
    end)

    it("refuses unknown algorithms and parameters with nil, err", function()
      local k, err = kdf.new("nope")
      assert.is_nil(k)
      assert.equal('kdf.new: invalid kdf type "nope"', err)
      k = assert(kdf.new("PBKDF2"))
      local key
      key, err = k:derive(16, { nope = 1 })
      assert.is_nil(key)
      assert.equal('kdf:derive: unknown parameter "nope"', err)
      key, err = k:derive(16, { pass = "x", digest = "no-such-digest" })
      assert.is_nil(key)
      assert.matches("^kdf:derive: ", err)
    end)

    it("istype, get_provider_name, settable_params", function()
      local k = assert(kdf.new("HKDF"))
      assert.is_true(kdf.istype(k))
      assert.is_false(kdf.istype({}))
      assert.equal("default", k:get_provider_name())
      local names = {}
      for _, p in ipairs(k:settable_params()) do
        names[p[1]] = true
      end
      assert.is_true(names.key and names.salt and names.info and names.digest and true)
    end)
  end)
end)
