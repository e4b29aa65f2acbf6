-- wrk script for bench/serving.py: GetRecommendations as REST (GET /v1/users/{id}/recommendations,
-- through Envoy's gRPC-JSON transcoder) at a fixed rate, walking USERS users from USER0.
--
-- wrk has no rate option of its own; its delay() hook is asked before each request. One schedule
-- per wrk thread, shared by that thread's connections: send slot k is due at start + k / rate,
-- so a connection waits for the next free slot and a late one sends at once (a stall is not
-- hidden by spacing the requests after it out). Run with -t1 so RATE is the total rate.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } recsys_timespec;
int clock_gettime(int clk_id, recsys_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("recsys_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("RATE") or "500")
local user0 = tonumber(os.getenv("USER0") or "910000000")
local users = tonumber(os.getenv("USERS") or "100")
local period = 1000 / rate
local due = nil
local counter = 0

function delay()
  local t = now_ms()
  if due == nil then
    due = t
  end
  local wait = due - t
  due = due + period
  if wait < 0 then
    return 0
  end
  return wait
end

function request()
  counter = counter + 1
  return wrk.format("GET", "/v1/users/" .. (user0 + counter % users) .. "/recommendations?limit=20")
end
