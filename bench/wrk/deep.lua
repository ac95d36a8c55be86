-- GET pages of the hot tag beyond the cached window (its newest 1,000), a different page on every
-- request, so neither cache answers and PostgreSQL does (bench/ceiling.py runs the same pages).
--   MODE=offset: page_size 50-100 and page 21-100 (offset 1,000 to 9,900)
--   MODE=keyset: page_size 100 and before_id BEFORE - (request number % 100000)
dofile(os.getenv("WRK_DIR") .. "/common.lua")
local mode = os.getenv("MODE") or "offset"
local tag = os.getenv("TAG") or "topic1"
local before = tonumber(os.getenv("BEFORE") or "0")
local i = 0
function request()
  local path
  if mode == "keyset" then
    path = string.format("/api/v1/search-tweets?tag=%s&page_size=100&before_id=%d", tag, before - i % 100000)
  else
    local size = 50 + i % 51
    local page = 21 + math.floor(i / 51) % 80
    path = string.format("/api/v1/search-tweets?tag=%s&page=%d&page_size=%d", tag, page, size)
  end
  i = i + 1
  return wrk.format("GET", path)
end
