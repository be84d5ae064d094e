-- tollgate.uuid and the Lua side of tollgate.c.util.
require "spec.fixtures.declarative.unit_env"

local uuid = require "tollgate.uuid"
local util = require "tollgate.c.util"

describe("tollgate.uuid", function()
  it("validates canonical UUID text", function()
    assert.is_true(uuid.is_valid("0dc6f45b-8f8d-40d2-a504-473544ee190b"))
    assert.is_false(uuid.is_valid("0dc6f45b8f8d40d2a504473544ee190b"))
    assert.is_false(uuid.is_valid("0dc6f45b-8f8d-40d2-a504-473544ee190g"))
    assert.is_false(uuid.is_valid(42))
  end)

  it("makes random version 4 UUIDs", function()
    local a, b = uuid.v4(), uuid.v4()
    assert.is_true(uuid.is_valid(a))
    assert.equal("4", a:sub(15, 15))
    assert.not_equal(a, b)
  end)

  it("makes RFC 4122 version 5 UUIDs", function()
    -- RFC 4122 (erratum 1352): DNS namespace, "www.example.com"
    assert.equal("2ed6657d-e927-568b-95e1-2665a8aea6a2",
                 uuid.v5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com"))
    assert.equal(uuid.v5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "x"),
                 uuid.factory_v5("6ba7b810-9dad-11d1-80b4-00c04fd430c8")("x"))
    assert.has_error(function() uuid.v5("nope", "x") end, "uuid.v5: invalid namespace uuid")
  end)

  it("derives entity ids as Kong's declarative config does", function()
    -- computed independently with Python's uuid.uuid5
    assert.equal("89dd9e9d-3f98-5e11-ab72-c90b6c2d30a2", uuid.entity_id("services", "example"))
    assert.equal("b32379d9-3d28-5683-a79c-72139be6e34f", uuid.entity_id("consumers", "alice"))
  end)
end)

describe("tollgate.c.util", function()
  it("hashes and hex-encodes", function()
    assert.equal("900150983cd24fb0d6963f7d28e17f72", util.hex(util.md5("abc")))
    assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", util.hex(util.sha1("abc")))
    assert.equal(32, #util.sha256(""))
  end)

  it("gives random bytes and the time", function()
    assert.equal(12, #util.random_bytes(12))
    assert.not_equal(util.random_bytes(12), util.random_bytes(12))
    assert.truthy(math.abs(util.now() - os.time()) < 2)
  end)
end)
