"""The Lua scripts a node runs in Redis: each is one atomic step (Redis runs one script at a time).

Keys, under the prefix ``salotto:`` (one Redis database per network; one primary, see docs/cluster.md):

* ``seq``: the network's state counter, one step per state change;
* ``users`` (uid -> the user as JSON), ``nicks`` (casefolded nick -> uid);
* ``chans`` (a set of casefolded channel names), ``cv`` (name -> the ``seq`` of its last change), and per
  channel ``ch:NAME`` (its fields), ``m:NAME`` (uid -> prefix modes), ``inv:NAME`` (uid -> by an operator);
* ``nodes`` (the node names alive or not yet reaped), ``node:NAME`` (a node's liveness, with a TTL);
* ``j:NAME``: a copy of what node NAME recorded in history and has not stored yet (a list of JSON batches).

A uid is ``NODE:ID``: which node holds the connection, and its number there.
"""

from __future__ import annotations

__all__ = ["APPLY", "ASSERT", "DEAD_NODES", "PREFIX", "REAP", "SNAPSHOT"]

PREFIX = "salotto:"

# One state change, checked first. KEYS: seq, cv, nicks. ARGV: checks, ops (JSON), the state channel, the
# event (JSON). Checks: ["cv", NAME, SEQ] (the channel did not change since SEQ: what the node decided on is
# what Redis has), ["fields", KEY, {FIELD: VALUE}] (those fields of a channel's hash are as given: its modes
# and lists, for a join that depends on nothing else), ["nick", NICK, UID] (NICK is free or UID's). On a
# failed check nothing changes and the answer is {0, seq now}; otherwise every op is applied, ``seq`` goes up
# by one, "SEQ EVENT" is published on the state channel, and the answer is {1, seq}. No ops (a check alone:
# a refused join confirmed): nothing changes nor is published, and the answer is {1, seq now}.
APPLY = """
local checks = cjson.decode(ARGV[1])
for _, c in ipairs(checks) do
  if c[1] == 'cv' then
    local v = tonumber(redis.call('HGET', KEYS[2], c[2]) or '0')
    if v ~= c[3] then return {0, tonumber(redis.call('GET', KEYS[1]) or '0')} end
  elseif c[1] == 'fields' then
    for field, value in pairs(c[3]) do
      if (redis.call('HGET', c[2], field) or '') ~= value then
        return {0, tonumber(redis.call('GET', KEYS[1]) or '0')}
      end
    end
  elseif c[1] == 'nick' then
    local h = redis.call('HGET', KEYS[3], c[2])
    if h and h ~= c[3] then return {0, tonumber(redis.call('GET', KEYS[1]) or '0')} end
  end
end
local ops = cjson.decode(ARGV[2])
if #ops == 0 then return {1, tonumber(redis.call('GET', KEYS[1]) or '0')} end
local seq = redis.call('INCR', KEYS[1])
for _, o in ipairs(ops) do
  local op = o[1]
  if op == 'hset' then
    redis.call('HSET', o[2], o[3], o[4])
  elseif op == 'hsetnx' then
    redis.call('HSETNX', o[2], o[3], o[4])
  elseif op == 'hset_x' then
    if redis.call('HEXISTS', o[2], o[3]) == 1 then redis.call('HSET', o[2], o[3], o[4]) end
  elseif op == 'hdel' then
    redis.call('HDEL', o[2], o[3])
  elseif op == 'hdel_if' then
    if redis.call('HGET', o[2], o[3]) == o[4] then redis.call('HDEL', o[2], o[3]) end
  elseif op == 'sadd' then
    redis.call('SADD', o[2], o[3])
  elseif op == 'touch' then
    redis.call('HSET', KEYS[2], o[2], seq)
  elseif op == 'drop_if_empty' then
    -- o[2]: the channel's name; o[3]: its key prefix. Not for a permanent channel (the caller knows).
    if redis.call('HLEN', o[3] .. 'm:' .. o[2]) == 0 then
      redis.call('SREM', o[3] .. 'chans', o[2])
      redis.call('HDEL', KEYS[2], o[2])
      redis.call('DEL', o[3] .. 'ch:' .. o[2], o[3] .. 'inv:' .. o[2])
    end
  end
end
redis.call('PUBLISH', ARGV[3], seq .. ' ' .. ARGV[4])
return {1, seq}
"""

# Everything, at one point of the order. KEYS: seq, users, nicks, chans, cv. ARGV: the key prefix.
# Answer: {seq, users (flat), nicks (flat), cv (flat), {{name, fields (flat), members (flat), invites (flat)}...},
# the nodes in ``nodes``}
SNAPSHOT = """
local out = {redis.call('GET', KEYS[1]) or '0', redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
             redis.call('HGETALL', KEYS[5])}
local chans = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  chans[#chans + 1] = {name, redis.call('HGETALL', ARGV[1] .. 'ch:' .. name),
                       redis.call('HGETALL', ARGV[1] .. 'm:' .. name), redis.call('HGETALL', ARGV[1] .. 'inv:' .. name)}
end
out[5] = chans
out[6] = redis.call('SMEMBERS', ARGV[1] .. 'nodes')
return out
"""


# What a node whose users are gone leaves behind, removed in one step: its users, their nicks, their
# memberships and invitations, and the channels that are empty then (but permanent ones). KEYS: seq, users,
# nicks, chans, cv, nodes. ARGV: the node, the key prefix, the state channel, the event (JSON), and "keep":
# uids of that node to keep (JSON object; a node re-asserting its state keeps its live users). Answer: seq.
_REMOVE_NODE = """
local pfx = ARGV[1] .. ':'
local n = #pfx
local keep = cjson.decode(ARGV[5])
local function gone(uid) return string.sub(uid, 1, n) == pfx and not keep[uid] end
local users = redis.call('HKEYS', KEYS[2])
for _, uid in ipairs(users) do if gone(uid) then redis.call('HDEL', KEYS[2], uid) end end
local nicks = redis.call('HGETALL', KEYS[3])
for i = 1, #nicks, 2 do if gone(nicks[i + 1]) then redis.call('HDEL', KEYS[3], nicks[i]) end end
for _, name in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local mkey = ARGV[2] .. 'm:' .. name
  local ikey = ARGV[2] .. 'inv:' .. name
  local changed = false
  for _, uid in ipairs(redis.call('HKEYS', mkey)) do
    if gone(uid) then redis.call('HDEL', mkey, uid); changed = true end
  end
  for _, uid in ipairs(redis.call('HKEYS', ikey)) do
    if gone(uid) then redis.call('HDEL', ikey, uid); changed = true end
  end
  if changed then
    if redis.call('HLEN', mkey) == 0 and redis.call('HGET', ARGV[2] .. 'ch:' .. name, 'permanent') ~= '1' then
      redis.call('SREM', KEYS[4], name)
      redis.call('HDEL', KEYS[5], name)
      redis.call('DEL', ARGV[2] .. 'ch:' .. name, mkey, ikey)
    else
      redis.call('HSET', KEYS[5], name, '-1')
    end
  end
end
"""

# A node that is not alive any more (its liveness key expired), or this node's own earlier life: remove it,
# and answer {seq, its history copies...} (``j:NODE``: the batches of messages it had not stored yet), or 0.
# KEYS and ARGV as above (``keep`` is "{}"). ARGV[6] "check": only if the node is in ``nodes`` (nobody reaped
# it already) and its liveness key is gone; "all": whatever is left of it.
REAP = """
if ARGV[6] == 'check' then
  if redis.call('SISMEMBER', KEYS[6], ARGV[1]) == 0 then return 0 end
  if redis.call('EXISTS', ARGV[2] .. 'node:' .. ARGV[1]) == 1 then return 0 end
end
redis.call('SREM', KEYS[6], ARGV[1])
""" + _REMOVE_NODE + """
local seq = redis.call('INCR', KEYS[1])
for _, name in ipairs(redis.call('HKEYS', KEYS[5])) do
  if redis.call('HGET', KEYS[5], name) == '-1' then redis.call('HSET', KEYS[5], name, seq) end
end
redis.call('PUBLISH', ARGV[3], seq .. ' ' .. ARGV[4])
-- Its history not known to be stored yet: the reaper stores what of it the database does not have.
local jkey = ARGV[2] .. 'j:' .. ARGV[1]
local answer = redis.call('LRANGE', jkey, 0, -1)
redis.call('DEL', jkey)
table.insert(answer, 1, seq)
return answer
"""

# A node (re)asserts its state after it lost Redis: what of its users Redis holds that it does not goes,
# then its users, their nicks and memberships, and the channels they are in (those Redis lost) go in.
# KEYS and ARGV[1..5] as REMOVE_NODE; ARGV[6]: {users: {uid: [nick_cf, user JSON]}, chans: {name: [fields
# (flat list), {uid: status}]}}. A nick someone else holds now is not taken: the answer lists those uids
# after seq.
ASSERT = """
redis.call('SADD', KEYS[6], ARGV[1])
""" + _REMOVE_NODE + """
local state = cjson.decode(ARGV[6])
local conflicts = {}
for uid, u in pairs(state.users) do
  local holder = redis.call('HGET', KEYS[3], u[1])
  if holder and holder ~= uid then
    conflicts[#conflicts + 1] = uid
  else
    redis.call('HSET', KEYS[3], u[1], uid)
    redis.call('HSET', KEYS[2], uid, u[2])
  end
end
for name, c in pairs(state.chans) do
  if redis.call('SISMEMBER', KEYS[4], name) == 0 then
    redis.call('SADD', KEYS[4], name)
    redis.call('HSET', ARGV[2] .. 'ch:' .. name, unpack(c[1]))
  end
  for uid, status in pairs(c[2]) do redis.call('HSET', ARGV[2] .. 'm:' .. name, uid, status) end
  redis.call('HSET', KEYS[5], name, '-1')
end
local seq = redis.call('INCR', KEYS[1])
for _, name in ipairs(redis.call('HKEYS', KEYS[5])) do
  if redis.call('HGET', KEYS[5], name) == '-1' then redis.call('HSET', KEYS[5], name, seq) end
end
redis.call('PUBLISH', ARGV[3], seq .. ' ' .. ARGV[4])
local answer = {seq}
for _, uid in ipairs(conflicts) do answer[#answer + 1] = uid end
return answer
"""

# The nodes in ``nodes`` whose liveness key is gone. KEYS: nodes. ARGV: the key prefix.
DEAD_NODES = """
local dead = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'node:' .. name) == 0 then dead[#dead + 1] = name end
end
return dead
"""
