-- Query/form decoding and encoding (ngx.decode_args / encode_args rules),
-- URI escaping, multipart parsing, the error-body formats, header tables.
local args = require "kong.pdk.private.args"
local base = require "kong.pdk.private.base"
local response = require "kong.pdk.response"

describe("args.decode", function()
  it("decodes like ngx.req.get_uri_args", function()
    assert.same({ a = "1", b = "x y", c = true, d = "" }, args.decode("a=1&b=x+y&c&d="))
    assert.same({ a = { "1", "2", true } }, args.decode("a=1&a=2&a"))
    assert.same({ ["a b"] = "c&d" }, args.decode("a%20b=c%26d"))
    assert.same({}, args.decode(""))
    assert.same({ a = "1" }, args.decode("&&a=1&&"))
    assert.same({ a = "=x" }, args.decode("a==x"))
    -- an empty key is dropped
    assert.same({ b = "2" }, args.decode("=1&b=2"))
  end)

  it("stops at max args and says truncated", function()
    local t, err = args.decode("a=1&b=2&c=3", 2)
    assert.same({ a = "1", b = "2" }, t)
    assert.equal("truncated", err)
    t, err = args.decode("a=1&b=2", 2)
    assert.same({ a = "1", b = "2" }, t)
    assert.is_nil(err)
    local many = {}
    for i = 1, 150 do many[i] = "k" .. i .. "=v" end
    local all = args.decode(table.concat(many, "&"), 0)
    local n = 0
    for _ in pairs(all) do n = n + 1 end
    assert.equal(150, n)
    local def = args.decode(table.concat(many, "&"))
    n = 0
    for _ in pairs(def) do n = n + 1 end
    assert.equal(100, n)
  end)
end)

describe("args.encode", function()
  it("encodes like ngx.encode_args (sorted keys here)", function()
    assert.equal("a=1&b=x%20y", args.encode({ a = 1, b = "x y" }))
    assert.equal("a=1&a=2", args.encode({ a = { 1, 2 } }))
    assert.equal("flag", args.encode({ flag = true, off = false }))
    assert.equal("", args.encode({}))
    assert.equal("k%26=v%3D", args.encode({ ["k&"] = "v=" }))
    assert.has_error(function() args.encode("x") end,
                     "bad argument #1 to 'encode_args' (table expected, got string)")
  end)

  it("round-trips", function()
    local t = { a = "1", b = { "x y", "z/&" }, c = true }
    assert.same(t, args.decode(args.encode(t)))
  end)
end)

describe("escape_uri / unescape_uri", function()
  it("escapes a component and keeps unreserved characters", function()
    assert.equal("a%20b%2Fc~d-e_f.g", args.escape_uri("a b/c~d-e_f.g"))
    assert.equal("%E2%82%AC", args.escape_uri("\226\130\172"))
    assert.equal("/a%20b?c=d", args.escape_uri("/a b?c=d", 0))
  end)

  it("unescapes %XX and +", function()
    assert.equal("a b/c d", args.unescape_uri("a+b%2Fc%20d"))
    assert.equal("%zz", args.unescape_uri("%zz"))
  end)
end)

describe("args.multipart", function()
  it("parses fields and files", function()
    local body = table.concat({
      "--XyZ",
      'Content-Disposition: form-data; name="a"',
      "",
      "one",
      "--XyZ",
      'Content-Disposition: form-data; name="f"; filename="x.txt"',
      "Content-Type: text/plain",
      "",
      "line1\r\nline2",
      "--XyZ",
      'Content-Disposition: form-data; name="a"',
      "",
      "two",
      "--XyZ--",
      "",
    }, "\r\n")
    local t = args.multipart(body, "multipart/form-data; boundary=XyZ")
    assert.same({ a = { "one", "two" }, f = "line1\r\nline2" }, t)
    local t2 = args.multipart(body, 'multipart/form-data; boundary="XyZ"')
    assert.same(t, t2)
  end)

  it("refuses a body without its boundary", function()
    assert.is_nil(args.multipart("junk", "multipart/form-data; boundary=b"))
    assert.is_nil(args.multipart("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
                                 "multipart/form-data; boundary=b"))
    assert.is_nil(args.multipart("x", "multipart/form-data"))
  end)
end)

describe("kong.response.error formats", function()
  it("picks the format from Accept as Kong does", function()
    assert.equal("json", response.pick_format(nil))
    assert.equal("html", response.pick_format("text/html"))
    assert.equal("xml", response.pick_format("application/xml;q=0.9, text/html;q=0.5"))
    assert.equal("text", response.pick_format("text/*"))
    assert.equal("json", response.pick_format("*/*"))
    assert.equal("json", response.pick_format("image/png"))
  end)

  it("builds the core's bodies", function()
    local ct, body = response.error_body("json", 'say "hi"', "abc")
    assert.equal("application/json; charset=utf-8", ct)
    assert.equal('{\n  "message":"say \\"hi\\"",\n  "request_id":"abc"\n}', body)
    ct, body = response.error_body("text", "Nope", "abc")
    assert.equal("text/plain; charset=utf-8", ct)
    assert.equal("Nope\nrequest_id: abc\n", body)
    ct, body = response.error_body("xml", "a<b", "abc")
    assert.equal("application/xml; charset=utf-8", ct)
    assert.matches("<message>a&lt;b</message>", body, 1, true)
    ct, body = response.error_body("html", "Nope", "abc")
    assert.equal("text/html; charset=utf-8", ct)
    assert.matches("<p>Nope.</p>", body, 1, true)
  end)
end)

describe("header tables", function()
  it("look up in any case and with underscores", function()
    local t = setmetatable({ ["x-foo"] = "1", ["content-type"] = "a" }, base.headers_mt)
    assert.equal("1", t["X-Foo"])
    assert.equal("1", t.x_foo)
    assert.equal("a", t.Content_Type)
    assert.is_nil(t.missing)
    assert.is_nil(t[1])
  end)

  it("validate_header returns strings and lists", function()
    assert.equal("1", base.validate_header("a", 1))
    assert.equal("true", base.validate_header("a", true))
    assert.same({ "x", "y" }, base.validate_header("a", { "x", "y" }))
    assert.equal(" ", base.normalize_header(""))
  end)
end)
