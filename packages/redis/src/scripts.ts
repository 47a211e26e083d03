/**
 * The Lua scripts of the Redis engine. Each runs atomically inside Redis, so a decision (read the
 * state, decide rate and concurrency together, write only when admitting) is one round trip and
 * cannot interleave with another client's.
 *
 * They mirror `@ratesync/core`'s pure algorithms (`algorithms/*.ts`) line for line, in the same
 * floating-point order, and the engine conformance suite compares every answer with them. Time is
 * Redis's own (`TIME`), so application clocks never change a decision.
 *
 * A decision's reply is one string of whole numbers separated by spaces: one string costs Redis
 * and ioredis much less than an array reply (a Lua table, then one RESP item per value). Numbers
 * written back use `%d` or `%.17g`: Redis would otherwise format them with 14 significant digits
 * and lose the sub-millisecond part of epoch times. The common write of the two small scripts
 * (one more unit in the same bucket or window) skips the formatting: it keeps the stored time's
 * text as it was and appends the new count, whose plain `tostring` is exact below 10^14.
 * Expiries are capped at 10^15 ms (about 31,700 years): Lua hands Redis larger numbers in exponent
 * form, which `PX` and `PEXPIRE` refuse.
 *
 * The token bucket and fixed window without a concurrency limit, by far the most common limiters,
 * get scripts of their own: one string key, one GET and one SET with PX, no Lua function
 * definitions; at cost 1 the engine runs a copy made for the policy, with its numbers written in
 * instead of read from ARGV ({@link tokenBucketScript}, {@link fixedWindowScript}). Their reply
 * is `"<allowed> <seconds> <microseconds> <state>"`: the verdict (1 or 0), the store's `TIME`, and
 * the state as it was before the call (empty when there was none).
 * Only the verdict has to be taken inside Redis; the engine computes the rest of the decision
 * (remaining, reset, retry after) from that state and time with `@ratesync/core`'s own algorithm,
 * so the script spends nothing on it and the numbers are exactly the memory engine's.
 *
 * Everything else goes through the general script, whose reply carries the whole decision: the
 * store's time as epoch microseconds (exact in a double), and every other time as whole
 * microseconds from it, each rounded first (half a microsecond at most, far inside the
 * conformance tolerance).
 */

/**
 * Shared prelude: the store's clock and the number helpers.
 * `EPS` is core's `TIME_EPSILON_MS`.
 */
const PRELUDE = `
local EPS = 0.0005
local function num(x) return string.format('%.17g', x) end
local function us(x) return math.floor(x * 1000 + 0.5) end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = now_us / 1000
local function ttl(expires_at)
  local ms = math.ceil(expires_at - now)
  if ms < 1 then ms = 1 elseif ms > 1e15 then ms = 1e15 end
  return ms
end
`;

/**
 * The numbers of a token bucket or fixed window script: written into the script itself for one
 * policy at a cost of 1 (the common call), or read from ARGV (interval or window ms, burst or
 * limit, cost). Reading three ARGV values is about a sixth of what Redis executes for one of
 * these scripts (measured with callgrind: 56,000 instructions a call with them, 46,000 without).
 */
export interface RateScriptConstants {
  /** Token bucket: interval ms per unit; fixed window: window ms. */
  readonly a: number;
  /** Token bucket: burst; fixed window: limit. */
  readonly b: number;
}

/** The line that binds `a`, `b` and `c` (the cost): to ARGV, or to one policy's numbers at cost 1. */
function rateArguments(constants: RateScriptConstants | undefined): string {
  if (constants === undefined) return "local a, b, c = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])";
  return `local a, b, c = ${luaNumber(constants.a)}, ${luaNumber(constants.b)}, 1`;
}

/**
 * A Lua numeral for a finite number that reads back as exactly the same double: JavaScript's
 * shortest round-trip form (`0.001`, `1e-7`, `1e+21`), which Lua's reader (C `strtod`) accepts.
 *
 * @throws RangeError when `x` is not finite (a policy's numbers always are).
 */
export function luaNumber(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`A script constant must be a finite number, got ${x}.`);
  return Object.is(x, -0) ? "0" : String(x);
}

/**
 * Token bucket, no concurrency. KEYS: the bucket, a string "since units" (`since` in epoch
 * microseconds, an integer: it is always a `TIME` reading). ARGV: interval ms, burst, cost, or
 * none when the script was made for one policy at cost 1 (`constants`). Reply: see the module
 * comment.
 */
export function tokenBucketScript(constants?: RateScriptConstants): string {
  return `
local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local now = now_us / 1000
${rateArguments(constants)}
local since, units, tat = nil, 0, now
local v = redis.call('GET', KEYS[1])
if v then
  local space = string.find(v, ' ', 1, true)
  since = string.sub(v, 1, space - 1)
  units = tonumber(string.sub(v, space + 1))
  tat = since / 1000 + units * a
else
  v = ''
end
local debt = 0
if tat > now then debt = tat - now end
local after = debt + c * a
if after > b * a + 0.0005 then return '0 ' .. t[1] .. ' ' .. t[2] .. ' ' .. v end
local state
if tat <= now then
  state = string.format('%d %d', now_us, c)
else
  units = units + c
  state = units < 1e14 and since .. ' ' .. units or string.format('%s %d', since, units)
end
local ms = math.ceil(after)
if ms < 1 then ms = 1 elseif ms > 1e15 then ms = 1e15 end
redis.call('SET', KEYS[1], state, 'PX', ms)
return '1 ' .. t[1] .. ' ' .. t[2] .. ' ' .. v
`;
}

/** The token bucket script that reads its numbers from ARGV. */
export const TOKEN_BUCKET = tokenBucketScript();

/**
 * Fixed window, no concurrency. KEYS: the window (a string "start count", `start` in epoch ms).
 * ARGV: window ms, limit, cost, or none when the script was made for one policy at cost 1
 * (`constants`). Reply: see the module comment.
 */
export function fixedWindowScript(constants?: RateScriptConstants): string {
  return `
local t = redis.call('TIME')
local now = (t[1] * 1000000 + t[2]) / 1000
${rateArguments(constants)}
local start = math.floor(now / a) * a
local used, same = 0, nil
local v = redis.call('GET', KEYS[1])
if v then
  local space = string.find(v, ' ', 1, true)
  same = string.sub(v, 1, space - 1)
  if tonumber(same) == start then used = tonumber(string.sub(v, space + 1)) else same = nil end
else
  v = ''
end
if used + c > b then return '0 ' .. t[1] .. ' ' .. t[2] .. ' ' .. v end
local state
used = used + c
if same and used < 1e14 then state = same .. ' ' .. used else state = string.format('%.17g %d', start, used) end
local ms = math.ceil(start + a - now)
if ms < 1 then ms = 1 elseif ms > 1e15 then ms = 1e15 end
redis.call('SET', KEYS[1], state, 'PX', ms)
return '1 ' .. t[1] .. ' ' .. t[2] .. ' ' .. v
`;
}

/** The fixed window script that reads its numbers from ARGV. */
export const FIXED_WINDOW = fixedWindowScript();

/**
 * decide / peek, for every policy. KEYS: rate state (the algorithm's own key: a string for the
 * token bucket and fixed window, a hash `t`/`n` for the sliding window), sliding log (zset),
 * leases (zset). ARGV: mode (0 decide, 1 peek), kind (0 none, 1 token bucket, 2 sliding,
 * 3 fixed), a (interval or window ms), b (burst or limit), cost, maxConcurrent (0 = none),
 * leaseMs, leaseId. Reply, space-separated: allowed, refusedBy (0 none, 1 rate, 2 concurrency),
 * now (epoch us), remaining, reset in (us), retry after (us, -1 for never), in use, lease
 * expires in (us).
 */
export const DECIDE = `${PRELUDE}
local rate_key, log_key, lease_key = KEYS[1], KEYS[2], KEYS[3]
local mode = tonumber(ARGV[1])
local kind = tonumber(ARGV[2])
local a = tonumber(ARGV[3])
local b = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local max_concurrent = tonumber(ARGV[6])
local lease_ms = tonumber(ARGV[7])
local lease_id = ARGV[8]
local REPLY = '%d %d %d %d %d %d %d %d'

-- "x y" strings of the token bucket and fixed window states.
local function pair(v)
  local space = string.find(v, ' ', 1, true)
  return tonumber(string.sub(v, 1, space - 1)), tonumber(string.sub(v, space + 1))
end

-- The token bucket's "since" is stored in epoch microseconds (see TOKEN_BUCKET) and used in ms.
local state = nil
local since_us = now_us
if kind == 1 or kind == 3 then
  local v = redis.call('GET', rate_key)
  if v then
    local x, y = pair(v)
    if kind == 1 then
      since_us = x
      x = x / 1000
    end
    state = { x, y }
  end
end

-- A rate check: allowed, remaining, reset_at, retry_after (mirrors core's RateCheck).
local function token_bucket(c)
  local tat = now
  if state then tat = state[1] + state[2] * a end
  local debt = 0
  if tat > now then debt = tat - now end
  local capacity = b * a
  local after = debt + c * a
  if after > capacity + EPS then
    return false, math.max(0, math.floor((capacity - debt + EPS) / a)), now + debt, after - capacity
  end
  return true, math.max(0, math.floor((capacity - after + EPS) / a)), now + after, 0
end

local function log_cost(member) return tonumber(string.match(member, ':(%d+)$')) end

local function sliding(c)
  local horizon = now - a
  local total = tonumber(redis.call('HGET', rate_key, 't') or '0')
  local expired = redis.call('ZRANGEBYSCORE', log_key, '-inf', num(horizon))
  for i = 1, #expired do total = total - log_cost(expired[i]) end
  local used = total
  local newest = now
  local last = redis.call('ZRANGE', log_key, -1, -1, 'WITHSCORES')
  if last[2] and tonumber(last[2]) > horizon then newest = tonumber(last[2]) end
  if used + c <= b then
    local reset_at = now + a
    if c <= 0 then
      if used == 0 then reset_at = now else reset_at = newest + a end
    end
    return true, b - used - c, reset_at, 0
  end
  -- Walk from the oldest live admission until enough cost has left the window for this call.
  local must_leave = used + c - b
  local left = 0
  local offset = 0
  local retry_at = nil
  while retry_at == nil do
    local chunk = redis.call('ZRANGEBYSCORE', log_key, '(' .. num(horizon), '+inf', 'WITHSCORES', 'LIMIT', offset, 64)
    if #chunk == 0 then break end
    for i = 1, #chunk, 2 do
      left = left + log_cost(chunk[i])
      if left >= must_leave then
        retry_at = tonumber(chunk[i + 1]) + a
        break
      end
    end
    offset = offset + #chunk / 2
  end
  local reset_at = now
  if used ~= 0 then reset_at = newest + a end
  local wait = -1
  if retry_at then wait = retry_at - now end
  return false, b - used, reset_at, wait
end

local function fixed(c)
  local start = math.floor(now / a) * a
  local used = 0
  if state and state[1] == start then used = state[2] end
  local window_end = start + a
  if used + c > b then
    local reset_at = now
    if used > 0 then reset_at = window_end end
    return false, b - used, reset_at, window_end - now
  end
  local reset_at = now
  if used + c > 0 then reset_at = window_end end
  return true, b - used - c, reset_at, 0
end

local function check_rate(c)
  if kind == 1 then return token_bucket(c) end
  if kind == 2 then return sliding(c) end
  return fixed(c)
end

local r_allowed, remaining, reset_at, r_wait = true, 0, now, 0
if kind ~= 0 then r_allowed, remaining, reset_at, r_wait = check_rate(cost) end

-- Concurrency: live leases are those expiring after now.
local s_allowed, in_use, s_wait = true, 0, 0
if max_concurrent > 0 then
  in_use = redis.call('ZCOUNT', lease_key, '(' .. num(now), '+inf')
  if in_use >= max_concurrent then
    s_allowed = false
    local first = redis.call('ZRANGEBYSCORE', lease_key, '(' .. num(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    s_wait = tonumber(first[2]) - now
  end
end

-- A rate refusal's wait is exact and wins; the lease bound is reported only when slots alone refuse.
local wait = 0
if not r_allowed then wait = r_wait elseif not s_allowed then wait = s_wait end
local wait_us = -1
if wait >= 0 then wait_us = us(wait) end

if mode == 1 then
  -- Peek: the budget as it stands is what a call of cost 0 sees.
  local refused_by = 0
  if not r_allowed then refused_by = 1 elseif not s_allowed then refused_by = 2 end
  local standing_remaining, standing_reset = 0, now
  if kind ~= 0 then
    local _
    _, standing_remaining, standing_reset = check_rate(0)
  end
  local ok = 0
  if r_allowed and s_allowed then ok = 1 end
  return string.format(REPLY, ok, refused_by, now_us, standing_remaining, us(standing_reset - now), wait_us, in_use, 0)
end

if not (r_allowed and s_allowed) then
  -- Refused: nothing is written. Report the rate budget as it stands.
  local refused_by = 1
  if r_allowed then
    refused_by = 2
    if kind ~= 0 then
      local _
      _, remaining, reset_at = check_rate(0)
    end
  end
  return string.format(REPLY, 0, refused_by, now_us, remaining, us(reset_at - now), wait_us, in_use, 0)
end

-- Admitted: apply the rate part, then take the slot, and give every key an expiry.
if kind == 1 then
  local since, units = now, cost
  if state and state[1] + state[2] * a > now then
    since = state[1]
    units = state[2] + cost
  else
    since_us = now_us
  end
  redis.call('SET', rate_key, string.format('%d %d', since_us, units), 'PX', ttl(since + units * a))
elseif kind == 2 then
  if cost > 0 then
    local horizon = now - a
    local expired = redis.call('ZRANGEBYSCORE', log_key, '-inf', num(horizon))
    local total = tonumber(redis.call('HGET', rate_key, 't') or '0')
    for i = 1, #expired do total = total - log_cost(expired[i]) end
    if #expired > 0 then redis.call('ZREMRANGEBYSCORE', log_key, '-inf', num(horizon)) end
    local seq = redis.call('HINCRBY', rate_key, 'n', 1)
    redis.call('ZADD', log_key, num(now), seq .. ':' .. cost)
    redis.call('HSET', rate_key, 't', num(total + cost))
    redis.call('PEXPIRE', rate_key, ttl(now + a))
    redis.call('PEXPIRE', log_key, ttl(now + a))
  end
elseif kind == 3 then
  local start = math.floor(now / a) * a
  local count = cost
  if state and state[1] == start then count = state[2] + cost end
  redis.call('SET', rate_key, string.format('%.17g %d', start, count), 'PX', ttl(start + a))
end

local lease_in = 0
if max_concurrent > 0 then
  redis.call('ZREMRANGEBYSCORE', lease_key, '-inf', num(now))
  redis.call('ZADD', lease_key, num(now + lease_ms), lease_id)
  local latest = redis.call('ZRANGE', lease_key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', lease_key, ttl(tonumber(latest[2])))
  in_use = in_use + 1
  lease_in = us(lease_ms)
end
return string.format(REPLY, 1, 0, now_us, remaining, us(reset_at - now), 0, in_use, lease_in)
`;

/**
 * release. KEYS: leases (zset). ARGV: leaseId, channel. Returns 1 when a live lease was removed
 * (and announces it on the channel), 0 otherwise: an expired lease was already someone else's
 * slot to take, so removing it frees nothing and wakes nobody.
 */
export const RELEASE = `${PRELUDE}
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) > now then
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0
`;

/**
 * renew. KEYS: leases (zset). ARGV: leaseId, leaseMs. Returns the new expiry (string), or false
 * when the lease is gone or expired (an expired lease is never revived).
 */
export const RENEW = `${PRELUDE}
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then return false end
local expires_at = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', num(expires_at), ARGV[1])
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], ttl(tonumber(latest[2])))
return num(expires_at)
`;

/** reset. KEYS: every key of the target. ARGV: channel. Forgets everything; wakes waiters. */
export const RESET = `
redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[1], '1')
return 1
`;
