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

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.commands.core import Script
    from redis.exceptions import NoScriptError
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

_T = TypeVar("_T")

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

    Reserve, settle and release send their EVALSHA on connections the store keeps for itself, made
    as the client's pool makes them (its connection class and options: address, credentials, TLS,
    timeouts), one for each thread calling at the same moment; the command's bytes are put together
    from each ledger key's part, packed once per key. The budget check thus pays its round trip and
    little else, not the client's per-command work (a pool checkout that polls the socket, the retry
    wrapper, argument encoding, response callbacks). A client without such a pool (a cluster client)
    runs the scripts through redis-py's `Script` instead. The `redis` extra installs hiredis, which
    redis-py then uses to parse the replies in C.
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
        pool = getattr(client, "connection_pool", None)
        self._pool = pool if isinstance(pool, redis.ConnectionPool) else None
        # Connections not in use; list.pop and list.append are atomic, so threads share it unlocked.
        self._idle: list[_Connection] = []
        self._arguments: dict[str, _KeyArguments] = {}
        # The hashes' names encoded as redis-py encodes the other commands' (the encoding is an option).
        self._encode = client.get_encoder().encode if self._pool is not None else str.encode
        renew_after_fork(self._new_pool)

    def _new_pool(self) -> None:
        # redis-py notices a fork by the pid, but under a lock of its own that a thread of the parent
        # may have held when it forked: the child gets a pool of its own, and leaves the parent's
        # sockets alone (its own connections too: they are dropped unclosed).
        self._idle = []
        pool = self._client.connection_pool
        self._client.connection_pool = type(pool)(
            connection_class=pool.connection_class,
            max_connections=pool.max_connections,
            **pool.connection_kwargs,
        )
        if self._pool is not None:
            self._pool = self._client.connection_pool

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
        reply = self._run(self._reserve, keys, (amount,), reserving=True)
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
        reply = self._run(self._settle, keys, (reserved, actual), reserving=False)
        try:
            return _balances(reply, len(keys))
        except (TypeError, ValueError, IndexError) as exc:
            raise StoreError(f"the Redis spend store answered a settle with {reply!r}") from exc

    def release(self, keys: Sequence[LedgerKey], reserved: int) -> None:
        check_amount("reserved", reserved)
        check_keys(keys)
        self._check_open()
        if keys:
            self._run(self._settle, keys, (reserved, 0), reserving=False)

    def balances(self, keys: Sequence[LedgerKey]) -> tuple[Balance, ...]:
        self._check_open()
        names = [self._prefix + key.storage_key for key in keys]
        try:
            if self._pool is None:
                pipeline = self._client.pipeline(transaction=False)
                for name in names:
                    pipeline.hmget(name, "spent", "reserved")
                replies = pipeline.execute()
            else:
                replies = self._talk(self._pool, functools.partial(_read_hashes, names))
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
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                break
            connection.disconnect()
        if self._owns_client:
            self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the Redis spend store is closed")

    def _run(
        self, script: Script, keys: Sequence[LedgerKey], amounts: tuple[int, ...], *, reserving: bool
    ) -> list[Any]:
        """`script` on `keys`; ARGV is `amounts`, then each key's arguments for that script."""
        self._check_open()
        arguments = [self._key_arguments(key) for key in keys]
        try:
            if self._pool is None:
                values = [a.reserve if reserving else a.settle for a in arguments]
                reply = script(
                    keys=[argument.name for argument in arguments],
                    args=[*amounts, *(value for each in values for value in each)],
                )
            else:
                command = _command(script, arguments, amounts, reserving)
                reply = self._talk(self._pool, functools.partial(_evalsha, script, command))
        except redis.RedisError as exc:
            raise StoreError(f"the Redis spend store failed: {exc}") from exc
        if not isinstance(reply, list):
            raise StoreError(f"the Redis spend store answered {reply!r}")
        return reply

    def _key_arguments(self, key: LedgerKey) -> _KeyArguments:
        # Ledger keys are made once per budget, group and window (ChargeBook), so the same object
        # comes back call after call; another object of the same entry is packed anew.
        arguments = self._arguments.get(key.storage_key)
        if arguments is None or arguments.key is not key:
            if len(self._arguments) >= _ARGUMENTS_KEPT:
                self._arguments.clear()
            arguments = _KeyArguments.of(key, self._prefix, self._encode)
            self._arguments[key.storage_key] = arguments
        return arguments

    def _talk(self, pool: redis.ConnectionPool, exchange: Callable[[_Connection], _T]) -> _T:
        """`exchange` of commands and replies on one of the store's own connections."""
        connection: _Connection
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = pool.connection_class(**pool.connection_kwargs)
        else:
            # Idle since its last call: the server may have hung up meanwhile (a restart, its timeout
            # for idle clients). As redis-py's pool does on checkout, such a connection is opened
            # anew rather than failing the call.
            try:
                if connection.can_read():
                    connection.disconnect()
            except (redis.RedisError, OSError):
                connection.disconnect()
        try:
            result = exchange(connection)
        except redis.ResponseError:
            self._give_back(connection)  # an error reply, read whole: the connection is in step
            raise
        except BaseException:
            # A reply may still be on its way (a timeout): this connection must not answer another call.
            connection.disconnect()
            raise
        self._give_back(connection)
        return result

    def _give_back(self, connection: _Connection) -> None:
        if self._closed:
            connection.disconnect()
        else:
            self._idle.append(connection)


def _evalsha(script: Script, command: bytes, connection: _Connection) -> Any:
    packed = [command]  # redis-py sends each item of a list: one item, one sendall
    connection.send_packed_command(packed)
    try:
        return connection.read_response()
    except NoScriptError:
        # The server lost its scripts (restarted, or SCRIPT FLUSH): the script did not run, so loading
        # it and sending the same command again counts the call once.
        connection.send_command("SCRIPT", "LOAD", script.script)
        connection.read_response()
        connection.send_packed_command(packed)
        return connection.read_response()


def _read_hashes(names: list[str], connection: _Connection) -> list[Any]:
    """HMGET spent, reserved of each hash, pipelined: one round trip."""
    connection.send_packed_command(
        connection.pack_commands([("HMGET", name, "spent", "reserved") for name in names])
    )
    replies: list[Any] = []
    error: redis.ResponseError | None = None
    for _ in names:
        # Every reply is read before an error is raised, so that none is left for the next call.
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as exc:
            error = error or exc
    if error is not None:
        raise error
    return replies


_ARGUMENTS_KEPT = 4096


class _Connection(Protocol):
    """What the store uses of a redis-py connection (whose methods carry no annotations)."""

    def send_packed_command(self, command: list[bytes]) -> None: ...

    def pack_commands(self, commands: list[tuple[str, ...]]) -> list[bytes]: ...

    def send_command(self, *args: object) -> None: ...

    def read_response(self) -> Any: ...

    def disconnect(self) -> None: ...

    def can_read(self) -> bool: ...


@dataclass(slots=True)
class _KeyArguments:
    """A ledger key as the scripts take it: the hash's name, its arguments to the reserve script
    (limit, 1 if it blocks, expires_at) and to the settle script (expires_at); each also packed."""

    key: LedgerKey
    name: str
    reserve: tuple[int, int, int]
    settle: tuple[int]
    packed_name: bytes
    packed_reserve: bytes
    packed_settle: bytes

    @classmethod
    def of(cls, key: LedgerKey, prefix: str, encode: Callable[[str], bytes]) -> _KeyArguments:
        name = prefix + key.storage_key
        reserve = (min(key.limit, MAX_BALANCE), int(key.blocking), key.expires_at)
        settle = (key.expires_at,)
        return cls(
            key=key,
            name=name,
            reserve=reserve,
            settle=settle,
            packed_name=_bulk(encode(name)),
            packed_reserve=b"".join(_bulk(b"%d" % value) for value in reserve),
            packed_settle=b"".join(_bulk(b"%d" % value) for value in settle),
        )


def _bulk(value: bytes) -> bytes:
    """One argument of a command as the Redis protocol (RESP) sends it: its length, then its bytes."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _command(
    script: Script, arguments: Sequence[_KeyArguments], amounts: tuple[int, ...], reserving: bool
) -> bytes:
    """EVALSHA of `script` as redis-py's `pack_command` packs it, from the keys' packed parts."""
    parts = [_head(script.sha, len(arguments), len(amounts), reserving)]
    parts += [argument.packed_name for argument in arguments]
    parts += [_bulk(b"%d" % amount) for amount in amounts]
    parts += [argument.packed_reserve if reserving else argument.packed_settle for argument in arguments]
    return b"".join(parts)


@functools.lru_cache(maxsize=64)
def _head(sha: str, count: int, amounts: int, reserving: bool) -> bytes:
    """A command's start: its number of arguments, EVALSHA, the script's SHA1, the number of keys."""
    length = 3 + count + amounts + (3 if reserving else 1) * count
    return b"*%d\r\n%s%s%s" % (length, _bulk(b"EVALSHA"), _bulk(sha.encode()), _bulk(b"%d" % count))


def _balances(values: Sequence[Any], count: int) -> tuple[Balance, ...]:
    if len(values) != 2 * count:
        raise ValueError(f"expected {2 * count} values, got {len(values)}")
    return tuple(
        [Balance(spent=int(values[i] or 0), reserved=int(values[i + 1] or 0)) for i in range(0, 2 * count, 2)]
    )
