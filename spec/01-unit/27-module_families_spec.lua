-- tollgate.modules: the module families tollgate implements load only from
-- tollgate's own files; a member it does not ship fails `require` naming it,
-- even when a file of that name is on package.path.
local modules = require "tollgate.modules"

local SHIPPED = {
  "resty.string", "resty.md5", "resty.sha1", "resty.sha224", "resty.sha256", "resty.sha384",
  "resty.sha512", "resty.random", "resty.openssl.digest", "resty.openssl.hmac",
  "resty.openssl.mac", "resty.openssl.cipher", "resty.openssl.kdf", "resty.openssl.rand",
  "resty.openssl.bn", "resty.openssl.pkey", "resty.openssl.x509", "resty.openssl.x509.name",
  "resty.openssl.x509.altname", "resty.openssl.version", "ngx.base64",
  "resty.http", "resty.http_headers", "resty.redis", "ngx.semaphore",
}

describe("module families tollgate implements", function()
  it("every shipped module resolves to tollgate's own file", function()
    for _, name in ipairs(SHIPPED) do
      local file = package.searchpath(name, modules.path)
      assert.is_string(file, name)
      assert.is_table(require(name), name)
    end
  end)

  it("a member tollgate does not ship fails require with a message naming it", function()
    for _, name in ipairs({ "resty.aes", "resty.openssl", "resty.openssl.x509.csr",
                            "resty.openssl.x509.extension", "resty.core", "resty.core.base",
                            "ngx.ssl", "ngx.balancer" }) do
      local ok, err = pcall(require, name)
      assert.is_false(ok, name)
      assert.equal("module '" .. name .. "' is not shipped by tollgate (tollgate provides its "
                   .. "own implementation of this module family and does not load it from "
                   .. "elsewhere)", err)
    end
  end)

  it("is not shadowed by a file of the same name elsewhere on package.path", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. "/resty/openssl/x509"))
    local f = assert(io.open(dir .. "/resty/openssl/x509/csr.lua", "w"))
    f:write("return { stand_in = true }\n")
    f:close()
    local saved = package.path
    package.path = dir .. "/?.lua;" .. package.path
    local ok, err = pcall(require, "resty.openssl.x509.csr")
    package.path = saved
    os.execute("rm -rf " .. dir)
    assert.is_false(ok)
    assert.matches("module 'resty.openssl.x509.csr' is not shipped by tollgate", err, 1, true)
  end)

  it("other modules keep Lua's usual search and message", function()
    local ok, err = pcall(require, "resty.some_third_party_lib")
    assert.is_false(ok)
    assert.matches("module 'resty.some_third_party_lib' not found", err, 1, true)
    assert.is_false(modules.owned("resty.lrucache"))
    assert.is_true(modules.owned("resty.openssl.objects"))
  end)
end)
