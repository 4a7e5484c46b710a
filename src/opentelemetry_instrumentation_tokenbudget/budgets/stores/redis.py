"""A spend store in Redis, shared by every process of every machine that reaches the server.

Each ledger entry is one hash {spent, reserved} of picodollars, kept by Redis as 64-bit integers
(HINCRBY), with EXPIREAT set to the entry's `expires_at` so that past windows leave by themselves.
Reserve, settle and release are each one Lua script: one round trip, atomic across all the keys of a
call. In a Redis Cluster the keys of one call must share a hash slot (put a `{tag}` in the prefix);
otherwise the server refuses the script and the call gets StoreError.

Integer precision. Redis runs scripts in Lua 5.1, whose only number type is a double: exact up to
2**53 picodollars, about 9,007 USD. A budget entry can hold more (a month of an organisation's spend),
and a comparison rounded at 2**62 is off by up to 512 picodollars either way, so converting the
balances to Lua numbers would let a call through past a limit. The scripts therefore never turn a
balance into one Lua number. They read each value as its decimal string and split it into a high part
(all digits but the last nine) and a low part (the last nine digits); both parts stay below 2**53 for
any value up to 2**63, so sums with carry and comparisons of (high, low) pairs are exact. Redis itself
does the additions that are stored (HINCRBY, in 64-bit integers), fed the amounts as the strings the
client sent, and the scripts return the stored strings rather than HINCRBY's replies, which Lua would
have turned into doubles. Totals past 2**63 - 1 are refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.commands.core import Script
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "the Redis spend store needs the redis package: "
        "pip install 'opentelemetry-instrumentation-tokenbudget[redis]'"
    ) from exc

from ...forksafe import renew_after_fork
from ..store import Balance, LedgerKey, ReserveOutcome, StoreError
from ._ledger import MAX_BALANCE, check_amount, check_keys

DEFAULT_PREFIX = "tokenbudget:"

# The budget check runs before the user's request is sent: a Redis that is down or stuck must cost the
# call a fraction of a second, not the client's default of several seconds with retries.
DEFAULT_SOCKET_TIMEOUT = 0.25

_DECIMAL_ARITHMETIC = """
local BASE = 1000000000
local MAX_HIGH, MAX_LOW = 9223372036, 854775807

local function split(value)
  if not value then return 0, 0 end
  local digits = string.len(value)
  local high, low = 0, tonumber(value)
  if digits > 9 then
    high, low = tonumber(string.sub(value, 1, digits - 9)), tonumber(string.sub(value, digits - 8))
  end
  if not high or not low or high < 0 or low < 0 then
    error('tokenbudget: not a non-negative integer: ' .. tostring(value))
  end
  return high, low
end

local function add(a_high, a_low, b_high, b_low)
  local low = a_low + b_low
  if low >= BASE then return a_high + b_high + 1, low - BASE end
  return a_high + b_high, low
end

local function greater(a_high, a_low, b_high, b_low)
  return a_high > b_high or (a_high == b_high and a_low > b_low)
end

local function overflows(high, low)
  return greater(high, low, MAX_HIGH, MAX_LOW)
end
"""

# KEYS: the entries' hashes. ARGV[1]: the amount. Then, per key i, ARGV[3i-1]: its limit,
# ARGV[3i]: "1" if it blocks, ARGV[3i+1]: its expires_at.
# Returns {refused_by (1-based, 0 when admitted), spent_1, reserved_1, spent_2, ...}.
_RESERVE = (
    _DECIMAL_ARITHMETIC
    + """
local amount_high, amount_low = split(ARGV[1])
local held = {}
local refused_by = 0
for i, key in ipairs(KEYS) do
  held[i] = redis.call('HMGET', key, 'spent', 'reserved')
  if refused_by == 0 and ARGV[3 * i] == '1' then
    local spent_high, spent_low = split(held[i][1])
    local high, low = add(spent_high, spent_low, split(held[i][2]))
    high, low = add(high, low, amount_high, amount_low)
    if greater(high, low, split(ARGV[3 * i - 1])) then refused_by = i end
  end
end
local reply = {refused_by}
if refused_by == 0 then
  for i, key in ipairs(KEYS) do
    local reserved_high, reserved_low = split(held[i][2])
    if overflows(add(reserved_high, reserved_low, amount_high, amount_low)) then
      return redis.error_reply('tokenbudget: reserved would pass 2**63 - 1 on ' .. key)
    end
  end
  if ARGV[1] ~= '0' then
    for i, key in ipairs(KEYS) do
      redis.call('HINCRBY', key, 'reserved', ARGV[1])
      held[i] = redis.call('HMGET', key, 'spent', 'reserved')
      -- After the read: an expires_at already past deletes the key, yet the reply shows the write.
      redis.call('EXPIREAT', key, ARGV[3 * i + 1])
    end
  end
end
for i = 1, #KEYS do
  reply[2 * i] = held[i][1] or '0'
  reply[2 * i + 1] = held[i][2] or '0'
end
return reply
"""
)

# KEYS: the entries' hashes. ARGV[1]: the reservation to drop, ARGV[2]: the actual spend,
# ARGV[2+i]: expires_at of key i. Returns {spent_1, reserved_1, spent_2, ...}.
_SETTLE = (
    _DECIMAL_ARITHMETIC
    + """
local drop_high, drop_low = split(ARGV[1])
local actual_high, actual_low = split(ARGV[2])
local held = {}
for i, key in ipairs(KEYS) do
  held[i] = redis.call('HMGET', key, 'spent', 'reserved')
  local spent_high, spent_low = split(held[i][1])
  if overflows(add(spent_high, spent_low, actual_high, actual_low)) then
    return redis.error_reply('tokenbudget: spent would pass 2**63 - 1 on ' .. key)
  end
end
local reply = {}
for i, key in ipairs(KEYS) do
  local changed = false
  if ARGV[1] ~= '0' and held[i][2] and held[i][2] ~= '0' then
    local reserved_high, reserved_low = split(held[i][2])
    if greater(reserved_high, reserved_low, drop_high, drop_low) then
      redis.call('HINCRBY', key, 'reserved', '-' .. ARGV[1])
    else
      -- Never below zero: a reservation the server no longer holds must not become credit.
      redis.call('HSET', key, 'reserved', '0')
    end
    changed = true
  end
  if ARGV[2] ~= '0' then
    redis.call('HINCRBY', key, 'spent', ARGV[2])
    changed = true
  end
  if changed then
    held[i] = redis.call('HMGET', key, 'spent', 'reserved')
    redis.call('EXPIREAT', key, ARGV[2 + i])
  end
  reply[2 * i - 1] = held[i][1] or '0'
  reply[2 * i] = held[i][2] or '0'
end
return reply
"""
)


class RedisStore:
    """Reserve, settle and release are one round trip each; `balances` is one pipelined round trip.

    Commands are never retried: a reserve or settle whose reply was lost may still have run, and
    running it again would count the call twice. A failure is StoreError at once and the caller's
    on_store_error policy decides. A reserve that timed out may thus have reserved after all: that
    reservation errs on the safe side, counting against the limit until the entry expires.
    """

    def __init__(
        self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX, owns_client: bool = False
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._owns_client = owns_client
        self._closed = False
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        renew_after_fork(self._new_pool)

    def _new_pool(self) -> None:
        # redis-py notices a fork by the pid, but under a lock of its own that a thread of the parent
        # may have held when it forked: the child gets a pool of its own, and leaves the parent's
        # sockets alone.
        pool = self._client.connection_pool
        self._client.connection_pool = type(pool)(
            connection_class=pool.connection_class,
            max_connections=pool.max_connections,
            **pool.connection_kwargs,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        socket_connect_timeout: float | None = None,
        **client_options: Any,
    ) -> RedisStore:
        """Connect lazily (no round trip here); `client_options` go to `redis.Redis.from_url`."""
        client_options.setdefault("retry", Retry(NoBackoff(), 0))
        client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout
            if socket_connect_timeout is None
            else socket_connect_timeout,
            **client_options,
        )
        return cls(client, prefix=prefix, owns_client=True)

    def reserve(self, keys: Sequence[LedgerKey], amount: int) -> ReserveOutcome:
        check_amount("amount", amount)
        check_keys(keys)
        self._check_open()
        if not keys:
            return ReserveOutcome(balances=(), refused_by=None)
        arguments: list[str | int] = [amount]
        for key in keys:
            arguments += [min(key.limit, MAX_BALANCE), int(key.blocking), key.expires_at]
        reply = self._run(self._reserve, keys, arguments)
        try:
            refused = int(reply[0])
            balances = _balances(reply[1:], len(keys))
        except (TypeError, ValueError, IndexError) as exc:
            raise StoreError(f"the Redis spend store answered a reserve with {reply!r}") from exc
        return ReserveOutcome(balances=balances, refused_by=refused - 1 if refused else None)

    def settle(self, keys: Sequence[LedgerKey], reserved: int, actual: int) -> tuple[Balance, ...]:
        check_amount("reserved", reserved)
        check_amount("actual", actual)
        check_keys(keys)
        self._check_open()
        if not keys:
            return ()
        reply = self._run(self._settle, keys, [reserved, actual, *(key.expires_at for key in keys)])
        try:
            return _balances(reply, len(keys))
        except (TypeError, ValueError, IndexError) as exc:
            raise StoreError(f"the Redis spend store answered a settle with {reply!r}") from exc

    def release(self, keys: Sequence[LedgerKey], reserved: int) -> None:
        check_amount("reserved", reserved)
        check_keys(keys)
        self._check_open()
        if keys:
            self._run(self._settle, keys, [reserved, 0, *(key.expires_at for key in keys)])

    def balances(self, keys: Sequence[LedgerKey]) -> tuple[Balance, ...]:
        self._check_open()
        pipeline = self._client.pipeline(transaction=False)
        for key in keys:
            pipeline.hmget(self._prefix + key.storage_key, "spent", "reserved")
        try:
            replies = pipeline.execute()
        except redis.RedisError as exc:
            raise StoreError(f"the Redis spend store failed: {exc}") from exc
        try:
            return _balances([value for pair in replies for value in pair], len(keys))
        except (TypeError, ValueError, IndexError) as exc:
            raise StoreError(f"the Redis spend store answered a read with {replies!r}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the Redis spend store is closed")

    def _run(self, script: Script, keys: Sequence[LedgerKey], arguments: list[str | int]) -> list[Any]:
        self._check_open()
        try:
            reply = script(keys=[self._prefix + key.storage_key for key in keys], args=arguments)
        except redis.RedisError as exc:
            raise StoreError(f"the Redis spend store failed: {exc}") from exc
        if not isinstance(reply, list):
            raise StoreError(f"the Redis spend store answered {reply!r}")
        return reply


def _balances(values: Sequence[Any], count: int) -> tuple[Balance, ...]:
    if len(values) != 2 * count:
        raise ValueError(f"expected {2 * count} values, got {len(values)}")
    return tuple(
        Balance(spent=int(values[2 * i] or 0), reserved=int(values[2 * i + 1] or 0)) for i in range(count)
    )
