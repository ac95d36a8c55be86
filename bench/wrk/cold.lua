-- GET a different cold tag per request ($PREFIX$START+1 .. wrapping at $COUNT; PREFIX "cold"):
-- the cache-miss path.
dofile(os.getenv("WRK_DIR") .. "/common.lua")
local start = tonumber(os.getenv("START") or "0")
local count = tonumber(os.getenv("COUNT") or "50000")
local prefix = os.getenv("PREFIX") or "cold"
local i = 0
function request()
  local tag = prefix .. (((start + i) % count) + 1)
  i = i + 1
  return wrk.format("GET", "/api/v1/search-tweets?tag=" .. tag .. "&page=1&page_size=10")
end
