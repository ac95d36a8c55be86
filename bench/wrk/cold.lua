-- GET a different cold tag per request (cold$START+1 .. wrapping at $COUNT): the cache-miss path.
dofile(os.getenv("WRK_DIR") .. "/common.lua")
local start = tonumber(os.getenv("START") or "0")
local count = tonumber(os.getenv("COUNT") or "50000")
local i = 0
function request()
  local tag = "cold" .. (((start + i) % count) + 1)
  i = i + 1
  return wrk.format("GET", "/api/v1/search-tweets?tag=" .. tag .. "&page=1&page_size=10")
end
