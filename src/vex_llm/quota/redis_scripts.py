"""The Lua scripts ``RedisQuota`` runs: admit, settle and peek, one round trip each.

Each is the arithmetic of ``quota.gcra`` (same names, same order of checks), done on the
server so that every proxy process and machine sharing the Redis takes from one bucket: a
read-modify-write from the client would let two processes both take the last unit. Times
are the server's own ``TIME`` in milliseconds, so client clocks never matter for rates.

Keys of one tenant (all carry one hash tag, so on Redis Cluster they share a slot and a
script may touch them all): ``...:rpm`` and ``...:tpm`` hold a GCRA state (the theoretical
arrival time, ms) and expire when their bucket is full again; ``...:day:<YYYY-MM-DD>`` and
``...:month:<YYYY-MM>`` hold nanodollars spent (INCRBY: exact integers) and expire a day
after their period ends. Replies: a verdict is ``{allowed, remaining, reset_ms,
retry_ms}`` (integers; ``{}`` for a part not limited or not asked), spends are strings.
"""

from __future__ import annotations

__all__ = ["ADMIT", "PEEK", "SETTLE"]

_COMMON = """
local EPS = 0.001
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local period = tonumber(ARGV[1])

local function remaining(limit, ahead)
  local units = math.floor((period - ahead) / (period / limit) + EPS)
  if units < 0 then return 0 end
  if units > limit then return limit end
  return units
end

local function base_of(key)
  local tat = tonumber(redis.call('GET', key))
  if tat and tat > now then return tat end
  return now
end

local function store(key, tat)
  if tat <= now then
    redis.call('DEL', key)
  else
    redis.call('SET', key, string.format('%.4f', tat), 'PX', math.ceil(tat - now) + 1)
  end
end

local function take(key, limit, cost)
  if cost > limit then cost = limit end
  local base = base_of(key)
  local new_tat = base + cost * (period / limit)
  local allow_at = new_tat - period
  if allow_at > now + EPS then
    local ahead = base - now
    return {0, remaining(limit, ahead), math.ceil(ahead), math.ceil(allow_at - now)}
  end
  store(key, new_tat)
  local ahead = new_tat - now
  return {1, remaining(limit, ahead), math.ceil(ahead), 0}
end

local function peek(key, limit)
  local ahead = base_of(key) - now
  local wait = ahead + period / limit - period
  if wait <= EPS then
    return {1, remaining(limit, ahead), math.ceil(ahead), 0}
  end
  return {0, remaining(limit, ahead), math.ceil(ahead), math.ceil(wait)}
end

local function spent(key)
  return redis.call('GET', key) or '0'
end
"""

#: KEYS: rpm, tpm, day, month. ARGV: period ms, rpm limit, tpm limit, token cost,
#: daily limit, monthly limit (nanodollars); '' for a part not limited.
#: Returns {requests verdict, tokens verdict, day spent, month spent, reserved (0/1)}: the
#: tokens are taken only when the request was and no budget is spent (else peeked).
ADMIT = (
    _COMMON
    + """
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
local day, month = spent(KEYS[3]), spent(KEYS[4])
local requests, tokens, reserved = {}, {}, 0
if rpm then requests = take(KEYS[1], rpm, 1) end
if tpm then
  local daily, monthly = tonumber(ARGV[5]), tonumber(ARGV[6])
  local over = (daily and tonumber(day) >= daily) or (monthly and tonumber(month) >= monthly)
  if (rpm and requests[1] == 0) or over then
    tokens = peek(KEYS[2], tpm)
  else
    tokens = take(KEYS[2], tpm, tonumber(ARGV[4]))
    reserved = tokens[1]
  end
end
return {requests, tokens, day, month, reserved}
"""
)

#: KEYS: tpm, day, month. ARGV: period ms, tpm limit (''), token delta (signed),
#: nanodollars spent, day expiry s, month expiry s.
#: Returns {tokens verdict, day spent, month spent}.
SETTLE = (
    _COMMON
    + """
local tpm = tonumber(ARGV[2])
local tokens = {}
if tpm then
  local new_tat = base_of(KEYS[1]) + tonumber(ARGV[3]) * (period / tpm)
  store(KEYS[1], new_tat)
  local ahead = math.max(0, new_tat - now)
  tokens = {1, remaining(tpm, ahead), math.ceil(ahead), 0}
end
local nanos = tonumber(ARGV[4])
if nanos > 0 then
  redis.call('INCRBY', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('INCRBY', KEYS[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
return {tokens, spent(KEYS[2]), spent(KEYS[3])}
"""
)

#: KEYS: rpm, tpm, day, month. ARGV: period ms, rpm limit, tpm limit ('' : not limited).
#: Returns {requests verdict, tokens verdict, day spent, month spent}; writes nothing.
PEEK = (
    _COMMON
    + """
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
local requests, tokens = {}, {}
if rpm then requests = peek(KEYS[1], rpm) end
if tpm then tokens = peek(KEYS[2], tpm) end
return {requests, tokens, spent(KEYS[3]), spent(KEYS[4])}
"""
)
