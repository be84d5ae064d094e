-- ngx.re.match/find/gmatch/sub/gsub on PCRE2 and require "ngx.re" (split,
-- opt): OpenResty's options, captures, templates and messages.
local shim = require "tollgate.ngx_shim"
local re_impl = require "tollgate.ngx_re"

describe("ngx.re", function()
  local ngx = shim.new()
  local re = ngx.re

  describe("match", function()
    it("returns the captures table with [0]", function()
      local m = re.match("hello, 1234", "([0-9])[0-9]+")
      assert.same({ [0] = "1234", "1" }, m)
      assert.is_nil(re.match("hello", "[0-9]+"))
    end)

    it("gives false for groups that did not take part", function()
      local m = re.match("ab", "(a)(x)?(b)")
      assert.same({ [0] = "ab", "a", false, "b" }, m)
    end)

    it("adds named captures", function()
      local m = re.match("2024-05", "(?<year>\\d+)-(?<month>\\d+)(?<day>-\\d+)?")
      assert.equal("2024", m.year)
      assert.equal("05", m.month)
      assert.equal("2024", m[1])
      assert.is_false(m.day)
      assert.is_false(m[3])
    end)

    it("collects duplicate names into tables with D", function()
      local m = re.match("ab", "(?<x>a)(?<x>b)", "D")
      assert.same({ "a", "b" }, m.x)
      local _, err = re.match("ab", "(?<x>a)(?<x>b)")
      assert.matches("pcre2_compile%(%) failed: two named subpatterns have the same name", err)
    end)

    it("honours i, x, s, m, a, u, U, J options", function()
      assert.equal("HeLLo", re.match("HeLLo", "hello", "i")[0])
      assert.equal("abc", re.match("abc", "a b  c # comment", "x")[0])
      assert.is_nil(re.match("a\nb", "a.b"))
      assert.equal("a\nb", re.match("a\nb", "a.b", "s")[0])
      assert.is_nil(re.match("x\nfoo", "^foo"))
      assert.equal("foo", re.match("x\nfoo", "^foo", "m")[0])
      assert.is_nil(re.match("xfoo", "foo", "a"))
      assert.equal("foo", re.match("foox", "foo", "a")[0])
      assert.equal("\xc3\xa9", re.match("\xc3\xa9t\xc3\xa9", "^.", "u")[0])
      assert.equal("\xc3", re.match("\xc3\xa9t\xc3\xa9", "^.")[0])
      assert.equal("\xc3\xa9", re.match("\xc3\xa9", "^.", "U")[0])
      local _, err = re.match("\xff", ".", "u")
      assert.matches("pcre_exec%(%) failed: %-%d+", err)
      assert.equal("A", re.match("A", "\\u0041", "J")[0])
      assert.equal("abc", re.match("abc", "abc", "jo")[0])
    end)

    it("finds the longest match in DFA mode (d)", function()
      assert.equal("a", re.match("abcd", "a|ab|abc")[0])
      local m = re.match("abcd", "a|ab|abc", "d")
      assert.equal("abc", m[0])
      assert.is_nil(m[1])
    end)

    it("starts at ctx.pos and moves it past the match", function()
      local ctx = { pos = 2 }
      local m = re.match("1a2b3c", "[0-9]", nil, ctx)
      assert.equal("2", m[0])
      assert.equal(4, ctx.pos)
      m = re.match("1a2b3c", "[0-9]", nil, ctx)
      assert.equal("3", m[0])
      assert.equal(6, ctx.pos)
      assert.is_nil(re.match("1a2b3c", "[0-9]", nil, ctx))
    end)

    it("fills the given res table without clearing it, as OpenResty", function()
      local res = { "old", "older", extra = 1 }
      local m = re.match("ab", "(a)", nil, nil, res)
      assert.equal(res, m)
      assert.same({ [0] = "a", "a", "older", extra = 1 }, res)
    end)

    it("answers compile errors and refuses unknown flags", function()
      local m, err = re.match("x", "(abc")
      assert.is_nil(m)
      assert.equal('pcre2_compile() failed: missing closing parenthesis in "(abc"', err)
      _, err = re.match("x", "a)b")
      assert.equal('pcre2_compile() failed: unmatched closing parenthesis in "a)b" at ")b"', err)
      assert.has_error(function() re.match("x", "x", "q") end, 'unknown flag "q" (flags "q")')
    end)

    it("reports PCRE2 errors such as the match limit", function()
      re_impl.configure({ nginx_http_lua_regex_match_limit = 1000 })
      local m, err = re.match(string.rep("a", 30) .. "cb", "(a+)+b")
      re_impl.configure({ nginx_http_lua_regex_match_limit = 100000 })
      assert.is_nil(m)
      assert.equal("pcre_exec() failed: -47", err)
    end)

    it("caches compiled regexes with o", function()
      local before = re_impl.cache_count()
      for _ = 1, 3 do
        assert(re.match("abc", "b(c)", "o"))
      end
      assert.equal(before + 1, re_impl.cache_count())
      assert(re.match("abc", "b(c)"))
      assert.equal(before + 1, re_impl.cache_count())
    end)
  end)

  describe("find", function()
    it("returns the byte range of the match or of group nth", function()
      assert.same({ 8, 11 }, { re.find("hello, 1234", "([0-9])[0-9]+") })
      assert.same({ 8, 8 }, { re.find("hello, 1234", "([0-9])[0-9]+", nil, nil, 1) })
      assert.same({ nil, nil, "nth out of bound" },
                  { re.find("hello, 1234", "([0-9])[0-9]+", nil, nil, 2) })
      assert.same({}, { re.find("ab", "(a)(x)?", nil, nil, 2) })
      assert.same({}, { re.find("hello", "[0-9]") })
      local ctx = {}
      assert.same({ 2, 3 }, { re.find("abcabc", "bc", "jo", ctx) })
      assert.equal(4, ctx.pos)
      assert.same({ 5, 6 }, { re.find("abcabc", "bc", "jo", ctx) })
      local _, _, err = re.find("x", "[")
      assert.matches("^pcre2_compile%(%) failed: missing terminating %] for character class", err)
    end)
  end)

  describe("gmatch", function()
    it("iterates over every match", function()
      local out = {}
      for m in re.gmatch("a1 b2 c3", "(?<l>[a-z])(\\d)") do
        out[#out + 1] = m.l .. m[2] .. m[0]
      end
      assert.same({ "a1a1", "b2b2", "c3c3" }, out)
    end)

    it("handles empty matches as OpenResty", function()
      local out = {}
      for m in re.gmatch("ab", "") do out[#out + 1] = m[0] end
      assert.same({ "", "", "" }, out)
      out = {}
      for m in re.gmatch("\xc3\xa9", "", "u") do out[#out + 1] = m[0] end
      assert.equal(2, #out)
    end)

    it("returns the compile error", function()
      local it_, err = re.gmatch("x", "(")
      assert.is_nil(it_)
      assert.equal('pcre2_compile() failed: missing closing parenthesis in "("', err)
    end)
  end)

  describe("sub / gsub", function()
    it("expands $0, $N, ${N} and $$", function()
      assert.same({ "[hello] world", 1 }, { re.sub("hello world", "(h)(\\w+)", "[$0]") })
      assert.same({ "ello-h world", 1 }, { re.sub("hello world", "(h)(\\w+)", "$2-$1") })
      assert.same({ "h1 world", 1 }, { re.sub("hello world", "(h)\\w+", "${1}1") })
      -- a named group is still group 1
      assert.same({ "<o> world", 1 }, { re.sub("hello world", "hell(?<x>o)", "<${1}>") })
      assert.same({ "$ world", 1 }, { re.sub("hello world", "hello", "$$") })
      assert.same({ " world", 1 }, { re.sub("hello world", "hello", "$5") })
      assert.same({ "hello world", 0 }, { re.sub("hello world", "xyz", "$0") })
    end)

    it("refuses bad templates", function()
      assert.same({ nil, nil, "failed to compile the replacement template" },
                  { re.sub("abc", "b", "$x") })
      assert.same({ nil, nil, "failed to compile the replacement template" },
                  { re.gsub("abc", "b", "${1") })
      assert.same({ nil, nil, "failed to compile the replacement template" },
                  { re.gsub("abc", "b", "x$") })
      -- named captures in templates: OpenResty refuses them, matched or not
      assert.same({ nil, nil, "failed to compile the replacement template" },
                  { re.sub("hello world", "hell(?<x>o)", "<${x}>") })
      assert.same({ nil, nil, "failed to compile the replacement template" },
                  { re.gsub("hello world", "xyz", "${x}") })
      assert.same({ nil, nil, "failed to compile the replacement template" },
                  { re.sub("abc", "b", "${}") })
    end)

    it("gsub replaces every match and counts them", function()
      assert.same({ "a<1>b<22>", 2 }, { re.gsub("a1b22", "(\\d+)", "<$1>") })
      assert.same({ "-h-e-l-l-o-", 6 }, { re.gsub("hello", "", "-") })
      assert.same({ "-b--c-", 4 }, { re.gsub("baaac", "a*", "-") })
      assert.same({ "XbX", 2 }, { re.gsub("AbA", "a", "X", "i") })
    end)

    it("calls a function with the captures", function()
      local seen = {}
      local s, n = re.gsub("a=1, b=2", "(?<k>\\w+)=(\\d+)", function(m)
        seen[#seen + 1] = m[0]
        return m.k:upper() .. (m[2] * 10)
      end)
      assert.equal("A10, B20", s)
      assert.equal(2, n)
      assert.same({ "a=1", "b=2" }, seen)
      assert.same({ "x2y", 1 }, { re.sub("x1y", "\\d", function(m) return m[0] + 1 end) })
      -- the result goes through tostring(), as lua-resty-core
      assert.same({ "anilc", 1 }, { re.gsub("abc", "b", function() return nil end) })
      assert.has_error(function() re.gsub("abc", "b", function() end) end,
                       "bad argument #1 to 'tostring' (value expected)")
    end)

    it("a replacement function may use ngx.re itself", function()
      local s = re.gsub("a1 b2", "(\\w)(\\d)", function(m)
        return re.sub(m[0], "\\d", "#")
      end)
      assert.equal("a# b#", s)
    end)

    it("returns compile errors", function()
      assert.same({ nil, nil, 'pcre2_compile() failed: missing closing parenthesis in "("' },
                  { re.gsub("x", "(", "y") })
    end)
  end)
end)

describe('require "ngx.re"', function()
  local ngx_re = require "ngx.re"

  it("split splits, with captures, ctx.pos, max and res", function()
    assert.same({ "a", "b", "c", "d" }, ngx_re.split("a,b,c,d", ","))
    assert.same({ "a", ",", "b", ",", "c", ",", "d" }, ngx_re.split("a,b,c,d", "(,)"))
    assert.same({ "c", "d" }, ngx_re.split("a,b,c,d", ",", nil, { pos = 5 }))
    assert.same({ "a", "b", "c,d" }, ngx_re.split("a,b,c,d", ",", nil, nil, 3))
    assert.same({ "a", "b", "c" }, ngx_re.split("abc", ""))
    assert.same({ "a", "b", "" }, ngx_re.split("a,b,", ","))
    assert.same({ "abc" }, ngx_re.split("abc", ","))
    assert.same({ "a", "b" }, ngx_re.split("a1b", "\\d", "jo"))
    local mine = { "W", "X", "Y", "Z" }
    local res = ngx_re.split("a,b", ",", nil, nil, nil, mine)
    assert.equal(mine, res)
    assert.same({ "a", "b", nil, "Z" }, { res[1], res[2], res[3], res[4] })
    assert.same({ nil, 'pcre2_compile() failed: missing closing parenthesis in "("' },
                { ngx_re.split("a", "(") })
    assert.has_error(function() ngx_re.split("a", ",", nil, nil, nil, "x") end,
                     "res is not a table")
  end)

  it("opt sets the JIT stack size and refuses other names", function()
    assert.has_error(function() ngx_re.opt("nope", 1) end, "unrecognized option name")
    -- regexes are cached by the specs above ("o")
    assert.has_error(function() ngx_re.opt("jit_stack_size", 128 * 1024) end,
                     "changing jit stack size is not allowed when some regexs have "
                     .. "already been compiled and cached")
  end)
end)
