package cluster

import "github.com/redis/rueidis"

// The scripts. Every write an owner makes checks its lease in the same
// atomic step (fencing): a replica that lost its lease, paused past it or
// partitioned away, cannot append, publish or renew.

// acquireScript: KEYS lease, fence; ARGV holder, ttl ms, now ms, key ttl ms.
// The fence counter starts from the clock when it is new (first use, or
// Redis lost it), so fences keep growing across a flushed or restarted
// Redis. Lua numbers are doubles: %d keeps them integers in strings
// (exact below 2^53; ms × 1000 is about 2^51). Returns {1, fence} or
// {0, ms left on the holder's lease}.
var acquireScript = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local f = redis.call('INCR', KEYS[2])
if f == 1 then
  f = tonumber(ARGV[3]) * 1000
  redis.call('SET', KEYS[2], string.format('%d', f))
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. string.format('%d', f), 'PX', ARGV[2])
return {1, f}`)

// renewScript: KEYS lease; ARGV value, ttl ms. Returns 1, or 0 when the
// lease is not (any more) value.
var renewScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// releaseScript: KEYS lease; ARGV value, channel, message.
var releaseScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`)

// appendScript: KEYS lease, log, meta; ARGV value, watermark, keep, key
// ttl ms, channel, epoch if new, message tail, then one encoded entry each.
// Entries get consecutive offsets as stream ids 0-<offset>; the stream is
// capped at keep (exactly: trimming one entry per append costs little); the
// message announcing them is published in the same step. Returns {epoch, last offset}.
var appendScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('NOTOWNER')
end
local epoch = redis.call('HGET', KEYS[3], 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('HSET', KEYS[3], 'epoch', epoch, 'off', 0)
end
local n = #ARGV - 7
local last = redis.call('HINCRBY', KEYS[3], 'off', n)
local first = last - n + 1
for i = 1, n do
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], '0-' .. (first + i - 1), 'e', ARGV[7 + i])
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[3], 'wm', ARGV[2])
end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if n > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[5], 'A' .. epoch .. ' ' .. first .. ' ' .. ARGV[7])
return {epoch, last}`)

// publishOwnedScript: KEYS lease, meta; ARGV value, channel, message, keep
// (1: the message is a status to keep for Tail), key ttl ms.
var publishOwnedScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('NOTOWNER')
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[2], 'st', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return redis.call('PUBLISH', ARGV[2], ARGV[3])`)

// readScript: KEYS log, meta; ARGV after (offset), count. Returns {epoch,
// last offset, watermark, entries}. A journal that starts after the asked
// position, or has none, says so by its epoch and first id.
var readScript = rueidis.NewLuaScript(`
local m = redis.call('HMGET', KEYS[2], 'epoch', 'off', 'wm')
local entries = redis.call('XRANGE', KEYS[1], '(0-' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {m[1] or '', m[2] or '0', m[3] or '', entries}`)

// tailScript: KEYS log, meta; ARGV count. Like readScript, newest first,
// and the status kept last.
var tailScript = rueidis.NewLuaScript(`
local m = redis.call('HMGET', KEYS[2], 'epoch', 'off', 'wm', 'st')
local entries = {}
if tonumber(ARGV[1]) > 0 then
  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])
end
return {m[1] or '', m[2] or '0', m[3] or '', entries, m[4] or ''}`)
