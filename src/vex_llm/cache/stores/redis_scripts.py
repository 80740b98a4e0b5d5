"""The Lua scripts ``RedisStore`` runs on the server, one per operation.

Why scripts and not pipelines: each operation reads and then writes (a read refreshes the
idle timer up to the absolute deadline stored with the value; a write checks the bounds and
evicts). Run as a script the pair is atomic, so a refresh can never extend a value another
client replaced in between, eviction never races a concurrent write, and it costs one round
trip. Deadlines are computed from the server's own ``TIME``, so clients on machines with
skewed clocks still agree on when an entry dies. (Redis 7 and Valkey 8 replicate script
effects, so ``TIME`` in a writing script is allowed.)

Layout under the store's prefix ``P``: ``P e:<key>`` a hash {v: entry JSON, d: absolute
deadline in server ms (absent: none), i: idle lifetime ms (absent: none)} whose key expiry
is the nearer of the two; ``P lru`` a sorted set of keys scored by a sequence bumped on every
read and write (``P seq``); ``P sizes`` a hash key -> encoded size; ``P bytes`` their sum.
Bookkeeping for an entry that Redis expired on its own is cleaned up when a read, an LRU
sweep or a count notices it, and counted as an ``expired`` eviction then.

The scripts touch keys they compute (the LRU victims), so they suit a standalone server or a
replicated primary, not Redis Cluster.
"""

from __future__ import annotations

__all__ = [
    "CLEAR_BATCH",
    "DELETE",
    "GET",
    "GET_OR_LEASE",
    "REAP",
    "RELEASE",
    "RENEW",
    "SET",
    "SET_AND_RELEASE",
]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Forget an entry's bookkeeping; returns 1 if it was tracked.
_FORGET = """
local function forget(member)
  local size = redis.call('HGET', KEYS[3], member)
  redis.call('ZREM', KEYS[2], member)
  if size then
    redis.call('HDEL', KEYS[3], member)
    redis.call('DECRBY', KEYS[4], size)
    return 1
  end
  return 0
end
"""

#: KEYS: entry, lru, sizes, bytes, seq. ARGV: member.
#: Returns the entry JSON on a hit; 1 when the entry had expired (tracked, now gone); 0.
_GET_BODY = (
    """
local vals = redis.call('HMGET', KEYS[1], 'v', 'd', 'i')
if not vals[1] then
  return forget(ARGV[1])
end
local tti = tonumber(vals[3])
if tti then
"""
    + _NOW
    + """
  local px = tti
  local deadline = tonumber(vals[2])
  if deadline and deadline - now < px then px = deadline - now end
  if px <= 0 then
    redis.call('DEL', KEYS[1])
    return forget(ARGV[1])
  end
  redis.call('PEXPIRE', KEYS[1], px)
end
redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[5]), ARGV[1])
return vals[1]
"""
)
GET = _FORGET + _GET_BODY

#: KEYS: entry, lru, sizes, bytes, seq. ARGV: member, value, nbytes, ttl ms ('' none),
#: tti ms ('' none), max entries ('' none), max bytes ('' none), entry key prefix.
#: Returns {evicted for size, found expired}.
_SET_BODY = """
local ttl = tonumber(ARGV[4])
local tti = tonumber(ARGV[5])
redis.call('DEL', KEYS[1])
if ttl and tti then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', now + ttl, 'i', tti)
elseif ttl then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', now + ttl)
elseif tti then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'i', tti)
else
  redis.call('HSET', KEYS[1], 'v', ARGV[2])
end
local px = ttl
if tti and (not px or tti < px) then px = tti end
if px then redis.call('PEXPIRE', KEYS[1], px) end
forget(ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
local total = redis.call('INCRBY', KEYS[4], ARGV[3])
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[5]), ARGV[1])
local max_n = tonumber(ARGV[6])
local max_b = tonumber(ARGV[7])
local evicted, expired = 0, 0
while (max_n and redis.call('ZCARD', KEYS[2]) > max_n) or (max_b and total > max_b) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest or oldest == ARGV[1] then break end
  forget(oldest)
  total = tonumber(redis.call('GET', KEYS[4]))
  if redis.call('DEL', ARGV[8] .. oldest) == 1 then
    evicted = evicted + 1
  else
    expired = expired + 1
  end
end
return {evicted, expired}
"""
SET = _FORGET + _NOW + _SET_BODY

#: KEYS: entry, lru, sizes, bytes. ARGV: member.
#: Returns 1 if a live entry was deleted, 2 if only an expired one's bookkeeping, else 0.
DELETE = (
    _FORGET
    + """
local existed = redis.call('DEL', KEYS[1])
local tracked = forget(ARGV[1])
if existed == 1 then return 1 end
if tracked == 1 then return 2 end
return 0
"""
)

#: KEYS: (unused), lru, sizes, bytes. ARGV: entry key prefix, members...
#: Forgets members whose entry Redis expired; returns how many.
REAP = (
    _FORGET
    + """
local expired = 0
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 and forget(ARGV[i]) == 1 then
    expired = expired + 1
  end
end
return expired
"""
)

#: KEYS: (unused), lru, sizes, bytes. ARGV: entry key prefix, members...
#: Deletes the members' entries; returns {live ones deleted, expired ones forgotten}.
CLEAR_BATCH = (
    _FORGET
    + """
local deleted, expired = 0, 0
for i = 2, #ARGV do
  local existed = redis.call('DEL', ARGV[1] .. ARGV[i])
  local tracked = forget(ARGV[i])
  if existed == 1 then
    deleted = deleted + 1
  elseif tracked == 1 then
    expired = expired + 1
  end
end
return {deleted, expired}
"""
)

#: KEYS: lru, sizes, bytes, seq. Drops the bookkeeping once no entry is left (after a clear);
#: the sequence must not restart while entries ranked by it remain.
TIDY = """
if redis.call('ZCARD', KEYS[1]) == 0 then
  return redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
end
return 0
"""

#: KEYS: lease. ARGV: owner, ttl ms. Extends the lease only if ``owner`` still holds it.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: KEYS: lease. ARGV: owner. Deletes the lease only if ``owner`` still holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: KEYS: entry, lru, sizes, bytes, seq, lease. ARGV: member, owner, lease ttl ms.
#: GET, and on a miss ``SET lease owner NX PX ttl`` in the same script (nobody can store the
#: answer in between). Returns the entry JSON on a hit; else {found expired (0/1), taken (0/1)}.
GET_OR_LEASE = (
    _FORGET
    + "local function get_entry()\n"
    + _GET_BODY
    + """
end
local found = get_entry()
if type(found) == 'string' then
  return found
end
if redis.call('SET', KEYS[6], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {found, 1}
end
return {found, 0}
"""
)

#: KEYS: entry, lru, sizes, bytes, seq, lease. ARGV: those of SET, then the lease owner.
#: SET, then the owner's lease released. Returns SET's {evicted for size, found expired}.
SET_AND_RELEASE = (
    _FORGET
    + "local function set_entry()\n"
    + _NOW
    + _SET_BODY
    + """
end
local result = set_entry()
if redis.call('GET', KEYS[6]) == ARGV[9] then
  redis.call('DEL', KEYS[6])
end
return result
"""
)
