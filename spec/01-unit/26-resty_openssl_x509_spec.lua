-- resty.openssl.x509 and resty.openssl.x509.name (lua-resty-openssl's API),
-- checked against the openssl command line on certificates it makes.
local x509 = require "resty.openssl.x509"
local xname = require "resty.openssl.x509.name"
local altname = require "resty.openssl.x509.altname"
local pkey = require "resty.openssl.pkey"
local bn = require "resty.openssl.bn"
local digest = require "resty.openssl.digest"
local to_hex = require("resty.string").to_hex

local scratch = require "spec.helpers.scratch"

local tmp

local function read(name)
  return tmp:read(name)
end

local function out(cmd)
  return (tmp:out(cmd))
end

describe("resty.openssl.x509", function()
  lazy_setup(function()
    tmp = scratch.new()
    assert(tmp:sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key"
              .. " -out ca.pem -days 3650 -subj '/C=FR/O=Tollgate Test/CN=Test CA'"
              .. " -set_serial 1 2>/dev/null"
              .. " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
              .. " -keyout leaf.key -out leaf.csr -subj '/C=FR/O=Tollgate/OU=a/OU=b/CN=leaf.test'"
              .. " 2>/dev/null"
              .. " && openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -days 30"
              .. " -set_serial 0x1234ABCD5678 -sha384 -out leaf.pem 2>/dev/null"
              .. " && openssl x509 -in leaf.pem -outform DER -out leaf.der"))
    tmp:write("ext.cnf", "basicConstraints=critical,CA:TRUE,pathlen:2\n"
              .. "authorityInfoAccess=OCSP;URI:http://ocsp.test/a,OCSP;URI:http://ocsp.test/b\n"
              .. "crlDistributionPoints=URI:http://crl.test/1.crl,URI:http://crl.test/2.crl\n"
              .. "subjectAltName=critical,DNS:a.test,DNS:b.test,IP:192.0.2.1,IP:2001:db8::1,"
              .. "email:me@a.test,URI:https://a.test/,dirName:dir_sect,RID:1.2.3.4\n"
              .. "[dir_sect]\nCN=Dir Name\n")
    assert(tmp:sh("openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -days 30"
                  .. " -extfile ext.cnf -out ext.pem 2>/dev/null"))
  end)

  lazy_teardown(function()
    tmp:remove()
  end)

  it("new loads PEM and DER (auto or told), refuses garbage with nil, err", function()
    local a = assert(x509.new(read("leaf.pem")))
    local b = assert(x509.new(read("leaf.der"), "DER"))
    assert.equal(a:to_PEM(), b:to_PEM())
    local c, err = x509.new("garbage")
    assert.is_nil(c)
    assert.matches("^x509.new: ", err)
    c, err = x509.new(read("leaf.der"), "PEM")
    assert.is_nil(c)
    assert.matches("^x509.new: ", err)
  end)

  it("tostring writes PEM by default and DER on request; to_PEM", function()
    local c = assert(x509.new(read("leaf.pem")))
    assert.equal(read("leaf.pem"), c:tostring())
    assert.equal(read("leaf.pem"), c:to_PEM())
    assert.equal(read("leaf.der"), c:tostring("DER"))
    local s, err = c:tostring("TXT")
    assert.is_nil(s)
    assert.matches("PEM or DER", err, 1, true)
  end)

  it("get_subject_name and get_issuer_name return name objects", function()
    local c = assert(x509.new(read("leaf.pem")))
    local subject = assert(c:get_subject_name())
    assert.is_true(xname.istype(subject))
    assert.equal("C=FR/CN=leaf.test/O=Tollgate/OU=a/OU=b", subject:tostring())
    assert.equal("C=FR/CN=leaf.test/O=Tollgate/OU=a/OU=b", tostring(subject))
    assert.equal(5, subject:count())
    local obj, pos = subject:find("CN")
    assert.same({ id = "2.5.4.3", nid = 13, sn = "CN", ln = "commonName", blob = "leaf.test" },
                obj)
    assert.equal(5, pos)
    local ou1, p1 = subject:find("organizationalUnitName")
    local ou2, p2 = subject:find("2.5.4.11", p1)
    assert.equal("a", ou1.blob)
    assert.equal("b", ou2.blob)
    assert.equal(4, p2)
    assert.is_nil(subject:find("L"))
    local none, npos, err = subject:find("no-such-name")
    assert.is_nil(none)
    assert.is_nil(npos)
    assert.matches("invalid NID text", err, 1, true)
    local issuer = assert(c:get_issuer_name())
    assert.equal("Test CA", issuer:find("CN").blob)
    local keys = {}
    for k, v in subject:each() do
      keys[#keys + 1] = k .. ":" .. v.blob
    end
    assert.same({ "C:FR", "O:Tollgate", "OU:a", "OU:b", "CN:leaf.test" }, keys)
  end)

  it("get_not_before/get_not_after/get_lifetime agree with the openssl command line", function()
    local c = assert(x509.new(read("leaf.pem")))
    local dates = out("openssl x509 -in leaf.pem -noout -dates")
    local nb = tonumber(out("date -u -d '" .. dates:match("notBefore=([^\n]+)") .. "' +%s"))
    local na = tonumber(out("date -u -d '" .. dates:match("notAfter=([^\n]+)") .. "' +%s"))
    assert.equal(nb, c:get_not_before())
    assert.equal(na, c:get_not_after())
    local a, b = c:get_lifetime()
    assert.equal(nb, a)
    assert.equal(na, b)
    assert.equal(30 * 86400, na - nb)
  end)

  it("get_serial_number is a bn", function()
    local c = assert(x509.new(read("leaf.pem")))
    local serial = assert(c:get_serial_number())
    assert.is_true(bn.istype(serial))
    assert.equal("1234ABCD5678", serial:to_hex())
    assert.equal(tostring(0x1234ABCD5678), tostring(serial))
  end)

  it("get_pubkey is a pkey matching the key", function()
    local c = assert(x509.new(read("leaf.pem")))
    local pub = assert(c:get_pubkey())
    assert.is_true(pkey.istype(pub))
    assert.is_false(pub:is_private())
    assert.equal(assert(pkey.new(read("leaf.key"))):tostring(), pub:tostring())
    assert.equal(408, pub:get_key_type(true))
  end)

  it("signature names, version, digests", function()
    local c = assert(x509.new(read("leaf.pem")))
    assert.equal("RSA-SHA384", c:get_signature_name()) -- signed by the RSA CA
    assert.equal(669, c:get_signature_nid())
    assert.equal("SHA384", c:get_signature_digest_name())
    assert.equal(0, c:get_version()) -- `x509 -req` without extensions: v1
    assert.equal(2, assert(x509.new(read("ca.pem"))):get_version())
    local fp = out("openssl x509 -in leaf.pem -noout -fingerprint -sha256")
    fp = fp:match("=([%x:]+)"):gsub(":", ""):lower()
    assert.equal(fp, to_hex(c:digest("sha256")))
    assert.equal(20, #c:digest())
    assert.equal(32, #c:pubkey_digest("sha256"))
  end)

  it("get_ocsp_url and get_crl_url, first or all", function()
    local c = assert(x509.new(tmp:read("ext.pem")))
    assert.equal("http://ocsp.test/a", c:get_ocsp_url())
    assert.same({ "http://ocsp.test/a", "http://ocsp.test/b" }, c:get_ocsp_url(true))
    assert.equal("http://crl.test/1.crl", c:get_crl_url())
    assert.same({ "http://crl.test/1.crl", "http://crl.test/2.crl" }, c:get_crl_url(true))
    local plain = assert(x509.new(read("leaf.pem")))
    assert.is_nil(plain:get_ocsp_url())
    assert.is_nil(plain:get_crl_url(true))
  end)

  it("get_basic_constraints, by key, and the extensions' critical flags", function()
    local c = assert(x509.new(tmp:read("ext.pem")))
    assert.same({ ca = true, pathlen = 2 }, c:get_basic_constraints())
    assert.equal(2, c:get_basic_constraints("PathLen"))
    assert.is_true(c:get_basic_constraints("ca"))
    assert.is_true(c:get_basic_constraints_critical())
    assert.is_true(c:get_extension_critical("basicConstraints"))
    assert.is_false(c:get_extension_critical("crlDistributionPoints"))
    assert.is_false(c:get_extension_critical("1.3.6.1.5.5.7.1.1")) -- authorityInfoAccess
    local plain = assert(x509.new(read("leaf.pem")))
    assert.is_nil(plain:get_basic_constraints())
    local r, err = plain:get_extension_critical("basicConstraints")
    assert.is_nil(r)
    assert.matches("extension not found", err, 1, true)
    r, err = plain:get_extension_critical("noSuchExtension")
    assert.is_nil(r)
    assert.matches("invalid NID text", err, 1, true)
  end)

  it("get_subject_alt_name gives an x509.altname of every name type", function()
    local c = assert(x509.new(tmp:read("ext.pem")))
    local an = assert(c:get_subject_alt_name())
    assert.is_true(altname.istype(an))
    assert.equal(8, an:count())
    local seen = {}
    for k, v in an:each() do
      seen[#seen + 1] = k .. "=" .. tostring(v)
    end
    assert.same({ "DNS=a.test", "DNS=b.test", "IP=192.0.2.1", "IP=2001:db8::1",
                  "email=me@a.test", "URI=https://a.test/", "DirName=CN=Dir Name",
                  "RID=RID:<unsupported>" }, seen)
    assert.is_true(xname.istype(an:index(7)[2]))
    assert.is_true(c:get_subject_alt_name_critical())
    assert.is_nil(c:get_issuer_alt_name())
    assert.is_nil(assert(x509.new(read("leaf.pem"))):get_subject_alt_name())
  end)

  it("sets subject alternative names, basic constraints and critical flags", function()
    local key = assert(pkey.new({ type = "EC", curve = "prime256v1" }))
    local c = assert(x509.new())
    assert.is_true(c:set_pubkey(key))
    assert.is_true(c:set_subject_name(xname.new():add("CN", "san.test")))
    assert.is_true(c:set_issuer_name(c:get_subject_name()))
    assert.is_true(c:set_serial_number(7))
    assert.is_true(c:set_lifetime(os.time(), os.time() + 60))
    local an = altname.new():add("DNS", "san.test"):add("IPAddress", "198.51.100.7")
    assert.is_true(c:set_subject_alt_name(an))
    assert.is_true(c:set_issuer_alt_name(altname.new():add("URI", "https://issuer.test")))
    assert.is_true(c:set_basic_constraints({ CA = true, PathLen = 0 }))
    assert.is_true(c:set_basic_constraints_critical(true))
    assert.is_true(c:set_subject_alt_name_critical(true))
    assert.is_true(c:set_issuer_alt_name_critical(false))
    assert.is_true(c:set_extension_critical("issuerAltName", true))
    assert.is_true(c:get_issuer_alt_name_critical())
    assert.is_true(c:sign(key))
    tmp:write("san.pem", c:to_PEM())
    local text = tmp:out("openssl x509 -in san.pem -noout -ext subjectAltName,basicConstraints")
    assert.matches("X509v3 Subject Alternative Name: critical\n%s*"
                   .. "DNS:san.test, IP Address:198.51.100.7", text)
    assert.matches("X509v3 Basic Constraints: critical\n%s*CA:TRUE, pathlen:0", text)
    assert.equal("URI=https://issuer.test", c:get_issuer_alt_name():tostring())
    local ok, err = c:set_subject_alt_name("DNS:x")
    assert.is_nil(ok)
    assert.matches("expect a x509.altname", err, 1, true)
    ok, err = assert(x509.new(read("leaf.pem"))):set_extension_critical("basicConstraints", true)
    assert.is_nil(ok)
    assert.matches("extension not found", err, 1, true)
  end)

  it("check_private_key and verify", function()
    local c = assert(x509.new(read("leaf.pem")))
    assert.is_true(c:check_private_key(assert(pkey.new(read("leaf.key")))))
    local ok, err = c:check_private_key(assert(pkey.new(read("ca.key"))))
    assert.is_false(ok)
    assert.is_string(err)
    local ca = assert(x509.new(read("ca.pem")))
    assert.is_true(c:verify(ca:get_pubkey()))
    ok = c:verify(c:get_pubkey())
    assert.is_false(ok)
  end)

  it("builds and signs a certificate the openssl command line verifies", function()
    local key = assert(pkey.new(read("ca.key")))
    local ca = assert(x509.new(read("ca.pem")))
    local leafkey = assert(pkey.new({ type = "EC", curve = "prime256v1" }))
    local c = assert(x509.new())
    local name = assert(xname.new():add("CN", "built.test"):add("O", "Tollgate"))
    assert.is_true(c:set_subject_name(name))
    assert.is_true(c:set_issuer_name(ca:get_subject_name()))
    assert.is_true(c:set_pubkey(leafkey))
    assert.is_true(c:set_serial_number(bn.from_hex("ABCDEF")))
    assert.is_true(c:set_version(2))
    local now = os.time()
    assert.is_true(c:set_lifetime(now - 60, now + 3600))
    assert.is_true(c:set_not_after(now + 7200))
    assert.is_true(c:sign(key, digest.new("sha256")))
    assert.equal("RSA-SHA256", c:get_signature_name())
    assert.equal(now + 7200, c:get_not_after())
    tmp:write("built.pem", c:to_PEM())
    assert.matches("built.pem: OK",
                   out("openssl verify -CAfile ca.pem built.pem"),
                   1, true)
    assert.matches("serial=ABCDEF",
                   out("openssl x509 -in built.pem -noout -serial"), 1, true)
  end)

  it("dup and istype", function()
    local c = assert(x509.new(read("leaf.pem")))
    local d = assert(x509.dup(c.ctx))
    assert.is_true(x509.istype(d))
    assert.is_false(x509.istype({}))
    assert.equal(c:to_PEM(), d:to_PEM())
  end)
end)

describe("resty.openssl.x509.altname", function()
  it("add chains the name types lua-resty-openssl takes, case-insensitive", function()
    local an = assert(altname.new())
    assert.equal(an, an:add("DNS", "2.example.com"))
    an:add("DnS", "3.example.com"):add("RFC822Name", "a@example.com"):add("URI", "https://u.test")
      :add("IPAddress", "10.0.0.1"):add("ip", "::1")
    assert.equal(6, an:count())
    assert.equal("DNS=2.example.com/DNS=3.example.com/IP=10.0.0.1/IP=::1/URI=https://u.test/"
                 .. "email=a@example.com", an:tostring())
    assert.equal(an:tostring(), tostring(an))
  end)

  it("each, all and index", function()
    local an = altname.new():add("DNS", "a.test"):add("DNS", "b.test"):add("email", "e@a.test")
    local keys = {}
    for k, v in an:each() do
      keys[#keys + 1] = k .. ":" .. v
    end
    assert.same({ "DNS:a.test", "DNS:b.test", "email:e@a.test" }, keys)
    assert.same({ DNS = "b.test", email = "e@a.test" }, an:all())
    assert.same({ "DNS", "a.test" }, an:index(1))
    assert.same({ "email", "e@a.test" }, an[3])
    assert.is_nil(an:index(4))
  end)

  it("add refuses unknown types and bad addresses with nil, err", function()
    local r, err = altname.new():add("X400", "x")
    assert.is_nil(r)
    assert.equal("x509.altname:add: unknown type X400", err)
    r, err = altname.new():add("IP", "not-an-ip")
    assert.is_nil(r)
    assert.equal("x509.altname:add: invalid IP address not-an-ip", err)
  end)

  it("dup copies, istype tells", function()
    local an = altname.new():add("DNS", "a.test")
    local d = assert(altname.dup(an.ctx))
    an:add("DNS", "b.test")
    assert.equal(1, d:count())
    assert.is_true(altname.istype(d))
    assert.is_false(altname.istype(xname.new()))
  end)
end)

describe("resty.openssl.x509.name", function()
  it("add chains, find walks positions, tostring sorts as lua-resty-openssl", function()
    local n = assert(xname.new())
    assert.equal(n, n:add("CN", "example.com"))
    n:add("CN", "example2.com"):add("C", "US")
    assert.equal("C=US/CN=example.com/CN=example2.com", n:tostring())
    local obj, pos = n:find("CN")
    assert.equal("example.com", obj.blob)
    assert.equal(1, pos)
    obj, pos = n:find("2.5.4.3", 1)
    assert.equal("example2.com", obj.blob)
    assert.equal(2, pos)
    assert.equal(3, n:count())
  end)

  it("add refuses an unknown field with nil, err", function()
    local r, err = xname.new():add("NOPE", "x")
    assert.is_nil(r)
    assert.matches("x509.name:add", err, 1, true)
  end)

  it("dup copies and istype tells", function()
    local n = xname.new():add("CN", "a")
    local d = assert(xname.dup(n.ctx))
    n:add("O", "b")
    assert.equal("CN=a", d:tostring())
    assert.is_true(xname.istype(d))
    assert.is_false(xname.istype({}))
  end)
end)
