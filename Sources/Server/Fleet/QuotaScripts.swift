import Redis

/// The Lua scripts that admit and settle a request against limits kept in Redis, shared by every
/// replica. Each runs atomically on the server, on its clock (`TIME`), in one round trip.
///
/// Keys (eight a subject, in this order; `{tag}` is the request's tenant, so a request's keys all
/// share one Redis Cluster slot):
///   `sy:{tag}:<kind>:<id>:rpm`          the per-minute GCRA's theoretical arrival time (ms)
///   `…:rpd`                             the per-day one
///   `…:tpm`                             the token bucket: `a` tokens available at `t` (ms)
///   `…:leases`                          in-flight requests: a sorted set, scored by expiry (ms)
///   `…:costs`                           the cost each lease reserved (a hash)
///   `…:spent:<day>` / `…:spent:<month>` money settled (a float), kept 2 and 32 days
///   `…:counts:<day>`                    requests, tokens and rejections today (a hash), kept 2 days
enum QuotaScripts {
    static let keysPerSubject = 8
    static let limitsPerSubject = 6

    /// ARGV: lease id, reserved tokens, reserved cost, lease ttl (ms), subject count, then per subject
    /// rpm, rpd, tpm, concurrency, daily and monthly budget ("" for none).
    /// Returns `{1, report…}` when every limit of every subject passes (and takes them all), or
    /// `{0, subject, refusal, figure, figure, figure, report…}` without taking any. The report is the
    /// tightest request and token decisions: limit, remaining, reset (ms), -1 for none.
    static let admit = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local id, tokens, cost, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
        local function key(i, j) return KEYS[(i - 1) * 8 + j] end
        local function limit(i, j)
          local v = ARGV[5 + (i - 1) * 6 + j]
          if v == '' then return nil end
          return tonumber(v)
        end
        local function num(v, default)
          local x = tonumber(v)
          if x == nil or x ~= x or x == math.huge or x == -math.huge then return default end
          return x
        end
        local rq, tk = {-1, -1, -1}, {-1, -1, -1}
        local function tighten(d, l, remaining, reset)
          if d[1] < 0 or remaining < d[2] then d[1], d[2], d[3] = l, remaining, reset end
        end
        local function refuse(i, kind, a, b, c)
          redis.call('HINCRBY', key(i, 8), 'rejections', 1)
          redis.call('PEXPIRE', key(i, 8), 172800000)
          return {0, i, kind, tostring(a), tostring(b), tostring(c), rq[1], rq[2], math.ceil(rq[3]), tk[1], tk[2], math.ceil(tk[3])}
        end
        -- Drops the leases of requests that ended without settling (a replica that died), with their costs.
        local function live(i)
          local expired = redis.call('ZRANGEBYSCORE', key(i, 4), '-inf', now, 'LIMIT', 0, 1000)
          if #expired > 0 then
            redis.call('ZREM', key(i, 4), unpack(expired))
            redis.call('HDEL', key(i, 5), unpack(expired))
          end
          local reserved = 0
          for _, v in ipairs(redis.call('HVALS', key(i, 5))) do reserved = reserved + num(v, 0) end
          return redis.call('ZCARD', key(i, 4)), reserved
        end
        local plans = {}
        for i = 1, n do
          local plan = {}
          for g, period in ipairs({60000, 86400000}) do
            local l = limit(i, g)
            if l then
              local interval = period / l
              local tolerance = period - interval
              local tat = math.max(num(redis.call('GET', key(i, g)), now), now)
              local waited = tat - now
              if waited > tolerance then
                tighten(rq, l, 0, waited)
                return refuse(i, g == 1 and 'rpm' or 'rpd', l, waited - tolerance, 0)
              end
              local after = waited + interval
              tighten(rq, l, math.max(0, math.floor((period - after) / interval)), after)
              plan[g] = tat + interval
            end
          end
          local capacity = limit(i, 3)
          if capacity then
            local h = redis.call('HMGET', key(i, 3), 'a', 't')
            local available = math.min(capacity, num(h[1], capacity))
            local updated = num(h[2], now)
            if now > updated then available = math.min(capacity, available + capacity * (now - updated) / 60000) end
            local rate = capacity / 60000
            local untilFull = math.max(0, capacity - available) / rate
            if tokens > available then
              tighten(tk, capacity, math.max(0, math.floor(available)), untilFull)
              local wait = 60000
              if tokens <= capacity then wait = (tokens - available) / rate end
              return refuse(i, 'tpm', capacity, wait, 0)
            end
            tighten(tk, capacity, math.max(0, math.floor(available - tokens)), untilFull)
            plan.available = available - tokens
          end
          local concurrency, daily, monthly = limit(i, 4), limit(i, 5), limit(i, 6)
          if concurrency or daily or monthly then
            local inFlight, reserved = live(i)
            if concurrency and inFlight >= concurrency then return refuse(i, 'concurrency', concurrency, 0, 0) end
            if daily then
              local spent = num(redis.call('GET', key(i, 6)), 0)
              if spent + reserved + cost > daily then return refuse(i, 'daily', daily, spent, reserved) end
            end
            if monthly then
              local spent = num(redis.call('GET', key(i, 7)), 0)
              if spent + reserved + cost > monthly then return refuse(i, 'monthly', monthly, spent, reserved) end
            end
            plan.lease = true
          end
          plans[i] = plan
        end
        for i = 1, n do
          local plan = plans[i]
          if plan[1] then redis.call('SET', key(i, 1), plan[1], 'PX', math.ceil(plan[1] - now) + 1000) end
          if plan[2] then redis.call('SET', key(i, 2), plan[2], 'PX', math.ceil(plan[2] - now) + 1000) end
          if plan.available then
            redis.call('HSET', key(i, 3), 'a', plan.available, 't', now)
            redis.call('PEXPIRE', key(i, 3), 120000)
          end
          if plan.lease then
            redis.call('ZADD', key(i, 4), now + ttl, id)
            redis.call('HSET', key(i, 5), id, cost)
            redis.call('PEXPIRE', key(i, 4), ttl * 2)
            redis.call('PEXPIRE', key(i, 5), ttl * 2)
          end
          redis.call('HINCRBY', key(i, 8), 'requests', 1)
          redis.call('PEXPIRE', key(i, 8), 172800000)
        end
        return {1, rq[1], rq[2], math.ceil(rq[3]), tk[1], tk[2], math.ceil(tk[3])}
        """
    )

    /// ARGV: lease id, reserved tokens, actual tokens, actual cost, subject count, then per subject
    /// its tokens-per-minute ("" for none). Returns the lease's bucket back (what was reserved and
    /// not used), frees the lease and books the spend.
    static let settle = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local id, reserved, actual, cost, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
        local function key(i, j) return KEYS[(i - 1) * 8 + j] end
        for i = 1, n do
          local capacity = tonumber(ARGV[5 + i])
          if capacity then
            local h = redis.call('HMGET', key(i, 3), 'a', 't')
            local available = tonumber(h[1]) or capacity
            local updated = tonumber(h[2]) or now
            if available ~= available then available = capacity end
            if now > updated then available = math.min(capacity, available + capacity * (now - updated) / 60000) end
            redis.call('HSET', key(i, 3), 'a', math.min(capacity, available + reserved - actual), 't', now)
            redis.call('PEXPIRE', key(i, 3), 120000)
          end
          redis.call('ZREM', key(i, 4), id)
          redis.call('HDEL', key(i, 5), id)
          if cost > 0 then
            redis.call('INCRBYFLOAT', key(i, 6), cost)
            redis.call('PEXPIRE', key(i, 6), 172800000)
            redis.call('INCRBYFLOAT', key(i, 7), cost)
            redis.call('PEXPIRE', key(i, 7), 2764800000)
          end
          redis.call('HINCRBY', key(i, 8), 'tokens', actual)
          redis.call('PEXPIRE', key(i, 8), 172800000)
        end
        return 1
        """
    )

    /// Adds one replica's ledger (today's and this month's money, today's requests and tokens) to
    /// each subject's state: how spend comes back after Redis lost it. ARGV: the subjects' count,
    /// then four numbers a subject.
    static let seed = RedisScript(
        """
        local n = tonumber(ARGV[1])
        local function key(i, j) return KEYS[(i - 1) * 8 + j] end
        for i = 1, n do
          local base = 1 + (i - 1) * 4
          local day, month, requests, tokens = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
          if day > 0 then
            redis.call('INCRBYFLOAT', key(i, 6), day)
            redis.call('PEXPIRE', key(i, 6), 172800000)
          end
          if month > 0 then
            redis.call('INCRBYFLOAT', key(i, 7), month)
            redis.call('PEXPIRE', key(i, 7), 2764800000)
          end
          if requests > 0 or tokens > 0 then
            redis.call('HINCRBY', key(i, 8), 'requests', requests)
            redis.call('HINCRBY', key(i, 8), 'tokens', tokens)
            redis.call('PEXPIRE', key(i, 8), 172800000)
          end
        end
        return 1
        """
    )

    /// Whether this replica still has to add its ledger to the fleet's state: true once per Redis
    /// lifetime (an epoch, named when a replica first finds none), per replica. KEYS: the epoch and
    /// the set of replicas that added theirs in it; ARGV: a new epoch's name, the replica.
    static let seedTurn = RedisScript(
        """
        if not redis.call('GET', KEYS[1]) then
          redis.call('SET', KEYS[1], ARGV[1])
          redis.call('DEL', KEYS[2])
        end
        return redis.call('SADD', KEYS[2], ARGV[2])
        """
    )
}
