-- resty.http_headers: lua-resty-http's header table (new(): a table read and
-- written by any case of a name), as resty.http's responses use it.
return { new = require("resty.http").headers_new }
