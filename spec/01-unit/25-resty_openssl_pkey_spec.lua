-- resty.openssl.pkey (lua-resty-openssl's API), checked against the openssl
-- command line on keys it generates.
local pkey = require "resty.openssl.pkey"
local digest = require "resty.openssl.digest"
local cjson = require "cjson"

local scratch = require "spec.helpers.scratch"

local tmp

local function sh(cmd)
  return tmp:sh(cmd)
end

local function read(name)
  return tmp:read(name)
end

local function write(name, s)
  tmp:write(name, s)
end

describe("resty.openssl.pkey", function()
  lazy_setup(function()
    tmp = scratch.new()
    assert(sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
              .. " -out rsa.pem && openssl pkey -in rsa.pem -pubout -out rsa.pub"
              .. " && openssl pkey -in rsa.pem -outform DER -out rsa.der"
              .. " && openssl pkey -in rsa.pem -pubout -outform DER -out rsa.pub.der"
              .. " && openssl rsa -in rsa.pem -RSAPublicKey_out -out rsa.pkcs1.pub"
              .. " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem"
              .. " && openssl genpkey -algorithm ED25519 -out ed.pem"
              .. " && openssl pkcs8 -topk8 -nocrypt -in rsa.pem -outform DER -out rsa.p8.der"
              .. " && openssl genpkey -algorithm X25519 -out x1.pem"
              .. " && openssl genpkey -algorithm X25519 -out x2.pem"
              .. " && openssl pkey -in x2.pem -pubout -out x2.pub"))
    write("msg", "signed text")
  end)

  lazy_teardown(function()
    tmp:remove()
  end)

  describe("new", function()
    it("loads PEM and DER, private and public, PKCS#8 and PKCS#1", function()
      for _, f in ipairs({ "rsa.pem", "rsa.der", "rsa.p8.der" }) do
        local k = assert(pkey.new(read(f)))
        assert.is_true(k:is_private())
      end
      for _, f in ipairs({ "rsa.pub", "rsa.pub.der", "rsa.pkcs1.pub" }) do
        local k = assert(pkey.new(read(f)))
        assert.is_false(k:is_private())
        assert.equal(read("rsa.pub"), k:tostring())
      end
    end)

    it("honours opts.format and opts.type", function()
      assert(pkey.new(read("rsa.der"), { format = "DER", type = "pr" }))
      local k, err = pkey.new(read("rsa.pub"), { type = "pr" })
      assert.is_nil(k)
      assert.matches("pkey.new: failed to load private key", err, 1, true)
      k, err = pkey.new(read("rsa.pem"), { format = "DER" })
      assert.is_nil(k)
      assert.matches("pkey.new", err, 1, true)
    end)

    it("refuses garbage with nil, err", function()
      local k, err = pkey.new("not a key")
      assert.is_nil(k)
      assert.matches("^pkey.new: failed to load key", err)
    end)

    it("generates RSA (default 2048, bits, exp), EC on a curve, Ed25519", function()
      local k = assert(pkey.new())
      assert.equal(256, k:get_size())
      k = assert(pkey.new({ type = "RSA", bits = 1024, exp = 3 }))
      assert.equal(128, k:get_size())
      assert.equal("3", k:get_parameters().e:to_dec())
      k = assert(pkey.new({ type = "EC", curve = "prime256v1" }))
      assert.equal(415, k:get_parameters().group) -- NID_X9_62_prime256v1
      k = assert(pkey.new({ type = "Ed25519" }))
      assert.equal("ED25519", k:get_key_type().sn)
      local bad, err = pkey.new({ type = "EC", curve = "nope" })
      assert.is_nil(bad)
      assert.matches("unknown curve", err, 1, true)
    end)
  end)

  it("istype, is_private, get_provider_name", function()
    local k = assert(pkey.new(read("ec.pem")))
    assert.is_true(pkey.istype(k))
    assert.is_false(pkey.istype({}))
    assert.is_true(k:is_private())
    assert.is_false(assert(pkey.new(k:tostring())):is_private())
    assert.equal("default", k:get_provider_name())
  end)

  it("get_key_type as lua-resty-openssl's table, or the NID alone", function()
    local k = assert(pkey.new(read("rsa.pem")))
    assert.same({ id = "1.2.840.113549.1.1.1", nid = 6, sn = "rsaEncryption",
                  ln = "rsaEncryption" }, k:get_key_type())
    assert.equal(6, k:get_key_type(true))
    assert.equal(408, assert(pkey.new(read("ec.pem"))):get_key_type(true))
  end)

  it("get_default_digest_type", function()
    local t = assert(pkey.new(read("rsa.pem")):get_default_digest_type())
    assert.equal("SHA256", t.sn)
    assert.is_false(t.mandatory)
  end)

  it("get_parameters: RSA numbers agree with the openssl command line", function()
    local p = assert(pkey.new(read("rsa.pem")):get_parameters())
    local modulus = tmp:out("openssl rsa -in rsa.pem -noout -modulus"):match("Modulus=(%x+)")
    assert.equal(modulus, p.n:to_hex())
    assert.equal("65537", p.e:to_dec())
    for _, name in ipairs({ "d", "p", "q", "dmp1", "dmq1", "iqmp" }) do
      assert.is_true(require("resty.openssl.bn").istype(p[name]), name)
    end
    assert.equal(p.n:to_dec(), (p.p * p.q):to_dec())
    local ed = assert(pkey.new(read("ed.pem")):get_parameters())
    assert.equal(32, #ed.public)
    assert.equal(32, #ed.private)
  end)

  describe("sign and verify", function()
    it("RSA with a named digest, checked by the openssl command line both ways", function()
      local k = assert(pkey.new(read("rsa.pem")))
      local sig = assert(k:sign("signed text", "sha384"))
      write("lua.sig", sig)
      assert.is_true(sh("openssl dgst -sha384 -verify rsa.pub -signature lua.sig msg"))
      assert(sh("openssl dgst -sha512 -sign rsa.pem -out cli.sig msg"))
      local pub = assert(pkey.new(read("rsa.pub")))
      assert.is_true(pub:verify(read("cli.sig"), "signed text", "sha512"))
      local ok, err = pub:verify(read("cli.sig"), "other text", "sha512")
      assert.is_false(ok)
      assert.matches("pkey:verify", err, 1, true)
    end)

    it("defaults to SHA256 and accepts an updated digest instance", function()
      local k = assert(pkey.new(read("rsa.pem")))
      local d = digest.new("sha256")
      d:update("signed ", "text")
      local sig = assert(k:sign(d))
      assert.is_true(k:verify(sig, "signed text"))
      local d2 = digest.new("sha256")
      d2:update("signed text")
      assert.is_true(k:verify(k:sign("signed text"), d2))
    end)

    it("RSA-PSS padding with a salt length", function()
      local k = assert(pkey.new(read("rsa.pem")))
      local pss = pkey.PADDINGS.RSA_PKCS1_PSS_PADDING
      local sig = assert(k:sign("m", "sha256", pss, { pss_saltlen = 20 }))
      assert.is_true(k:verify(sig, "m", "sha256", pss, { pss_saltlen = 20 }))
      assert.is_false(k:verify(sig, "m", "sha256"))
    end)

    it("ECDSA in DER and raw (JWS) forms", function()
      local k = assert(pkey.new(read("ec.pem")))
      local der = assert(k:sign("signed text"))
      write("ec.sig", der)
      write("ec.pub", k:tostring())
      assert.is_true(sh("openssl dgst -sha256 -verify ec.pub -signature "
                        .. "ec.sig msg"))
      local raw = assert(k:sign("signed text", "sha256", nil, { ecdsa_use_raw = true }))
      assert.equal(64, #raw)
      assert.is_true(k:verify(raw, "signed text", "sha256", nil, { ecdsa_use_raw = true }))
    end)

    it("Ed25519 without a digest", function()
      local k = assert(pkey.new(read("ed.pem")))
      local sig = assert(k:sign("signed text"))
      assert.equal(64, #sig)
      assert.is_true(assert(pkey.new(k:tostring())):verify(sig, "signed text"))
    end)

    it("an unknown digest is nil, err", function()
      local k = assert(pkey.new(read("rsa.pem")))
      local sig, err = k:sign("m", "nope")
      assert.is_nil(sig)
      assert.equal('pkey:sign: invalid digest type "nope"', err)
    end)
  end)

  describe("raw operations", function()
    it("encrypt and decrypt (PKCS#1 v1.5 by default, OAEP), both ways with the command line",
       function()
      local k = assert(pkey.new(read("rsa.pem")))
      local pub = assert(pkey.new(read("rsa.pub")))
      write("c1.bin", assert(pub:encrypt("swan")))
      assert.equal("swan", tmp:out("openssl pkeyutl -decrypt -inkey rsa.pem -in c1.bin"))
      assert(sh("openssl pkeyutl -encrypt -pubin -inkey rsa.pub -in msg -out c2.bin"))
      assert.equal("signed text", k:decrypt(read("c2.bin")))
      local oaep = pkey.PADDINGS.RSA_PKCS1_OAEP_PADDING
      local c = assert(pub:encrypt("swan", oaep, { oaep_md = "sha256" }))
      assert.equal("swan", k:decrypt(c, oaep, { oaep_md = "sha256" }))
      local r, err = k:decrypt(c)
      assert.is_nil(r)
      assert.matches("^pkey:decrypt: ", err)
    end)

    it("sign_raw is recovered by verify_recover and by pkeyutl -verifyrecover", function()
      local k = assert(pkey.new(read("rsa.pem")))
      local sig = assert(k:sign_raw("raw data"))
      assert.equal("raw data", assert(pkey.new(read("rsa.pub"))):verify_recover(sig))
      write("raw.sig", sig)
      assert.equal("raw data",
                   tmp:out("openssl pkeyutl -verifyrecover -pubin -inkey rsa.pub -in raw.sig"))
    end)

    it("verify_raw checks a signature over a digest computed elsewhere", function()
      write("hash.bin", require("resty.openssl.digest").new("sha256"):final("signed text"))
      assert(sh("openssl pkeyutl -sign -inkey rsa.pem -pkeyopt digest:sha256 -in hash.bin"
                .. " -out hash.sig"))
      local pub = assert(pkey.new(read("rsa.pub")))
      assert.is_true(pub:verify_raw(read("hash.sig"), read("hash.bin"), "sha256"))
      assert.is_true(pub:verify_raw(read("hash.sig"), read("hash.bin")))
      local ok, err = pub:verify_raw(read("hash.sig"), ("\0"):rep(32), "sha256")
      assert.is_false(ok)
      assert.matches("pkey:verify_raw", err, 1, true)
    end)

    it("derive gives the X25519 shared secret the command line derives", function()
      local mine = assert(pkey.new(read("x1.pem")))
      local peer = assert(pkey.new(read("x2.pub")))
      local secret = assert(mine:derive(peer))
      assert.equal(32, #secret)
      assert.equal(tmp:out("openssl pkeyutl -derive -inkey x1.pem -peerkey x2.pub"), secret)
      local r, err = mine:derive("not a key")
      assert.is_nil(r)
      assert.matches("pkey:derive", err, 1, true)
    end)

    it("encapsulate and decapsulate share a secret (RSA-SVE)", function()
      local k = assert(pkey.new(read("rsa.pem")))
      local wrapped, secret = assert(assert(pkey.new(read("rsa.pub"))):encapsulate())
      assert.equal(256, #wrapped)
      assert.equal(secret, k:decapsulate(wrapped))
      local r, err = assert(pkey.new(read("ed.pem"))):encapsulate()
      assert.is_nil(r)
      assert.matches("pkey:encapsulate", err, 1, true)
    end)
  end)

  describe("paramgen", function()
    it("writes EC parameters the command line reads, and keys are made on them", function()
      local pem = assert(pkey.paramgen({ type = "EC", curve = "prime256v1" }))
      write("ec.param", pem)
      assert.matches("prime256v1", tmp:out("openssl ecparam -in ec.param -noout -text"), 1, true)
      local k = assert(pkey.new({ type = "EC", param = pem }))
      assert.equal(415, k:get_parameters().group)
    end)

    it("writes DH parameters of a named group; DH keys on them agree", function()
      local pem = assert(pkey.paramgen({ type = "DH", group = "ffdhe2048" }))
      write("dh.param", pem)
      assert.matches("2048 bit", tmp:out("openssl pkeyparam -in dh.param -noout -text"), 1, true)
      local a = assert(pkey.new({ type = "DH", param = pem }))
      local b = assert(pkey.new({ type = "DH", param = pem }))
      assert.equal(a:derive(b), b:derive(a))
      local c = assert(pkey.new({ type = "DH", group = "ffdhe2048" }))
      assert.equal(256, c:get_size())
    end)

    it("refuses other types and unknown curves with nil, err", function()
      local r, err = pkey.paramgen({ type = "RSA" })
      assert.is_nil(r)
      assert.equal("pkey.paramgen: unsupported type RSA", err)
      r, err = pkey.paramgen({ type = "EC", curve = "nope" })
      assert.is_nil(r)
      assert.equal('pkey.paramgen: unknown curve "nope"', err)
    end)
  end)

  describe("tostring and to_PEM", function()
    it("write public by default, private on request, PEM or DER", function()
      local k = assert(pkey.new(read("rsa.pem")))
      assert.equal(read("rsa.pub"), k:tostring())
      assert.equal(read("rsa.pub"), k:to_PEM("PublicKey"))
      assert.equal(read("rsa.pem"), k:tostring("private"))
      assert.equal(read("rsa.pem"), k:to_PEM("PrivateKey"))
      assert.equal(read("rsa.pub.der"), k:tostring("public", "DER"))
      assert.equal(read("rsa.p8.der"), k:tostring("private", "DER")) -- PKCS#8
      assert.equal(read("rsa.pkcs1.pub"), k:tostring("public", "PEM", true))
    end)

    it("refuse a private export of a public key, and unknown arguments", function()
      local pub = assert(pkey.new(read("rsa.pub")))
      local s, err = pub:tostring("private")
      assert.is_nil(s)
      assert.matches("not a private key", err, 1, true)
      s, err = pub:tostring("secret")
      assert.is_nil(s)
      assert.matches("pkey:tostring", err, 1, true)
      s, err = pub:tostring("public", "XML")
      assert.is_nil(s)
      assert.matches("PEM or DER", err, 1, true)
    end)
  end)

  it("key types print as JSON like lua-resty-openssl's", function()
    local k = assert(pkey.new(read("ed.pem")))
    assert.same({ id = "1.3.101.112", nid = 1087, sn = "ED25519", ln = "ED25519" },
                cjson.decode(cjson.encode(k:get_key_type())))
  end)
end)
