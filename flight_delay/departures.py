"""The departures feed: flights that left today and yesterday, with their actual times, in Redis.

What the point-in-time features read when a flight is asked about during the day
(flight_delay.features.live). Keys, under the deployment's prefix:

- ``<prefix>:departures``       sorted set: a scheduled flight's identity -> its actual time
  (minutes since 1970-01-01, the airport's local clock)
- ``<prefix>:departures:event`` hash: identity -> the event as JSON

A scheduled flight is one entry (its identity: ``Fecha-I``, ``Emp-I``, ``Vlo-I``, ``Des-I``):
sending it again replaces it, in whatever order events come. The feed keeps what lies within
``FEED_RETENTION_MINUTES`` of its newest departure (not of the server's clock: a replay of 2017
works as a live day does) and at most ``max_events`` entries, the oldest going first; an event
already older than that is not kept and is counted as such. Each batch is one Lua script, so a
reader never sees half of one and two writers never interleave.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis

from flight_delay.data import schema
from flight_delay.features.live import (
    IDENTITY_FIELDS,
    LOOKBACK_MINUTES,
    DepartureIndex,
    Departures,
    minutes,
)
from flight_delay.features.values import clean_text, parse_scheduled

#: how much the feed keeps behind its newest departure: the features' lookback, and an hour more
FEED_RETENTION_MINUTES = LOOKBACK_MINUTES + 60
#: the fields an event keeps (OPERA is optional: informative)
EVENT_FIELDS = (
    schema.SCHEDULED_AT,
    schema.CARRIER_CODE,
    schema.FLIGHT_NUMBER,
    schema.DESTINATION,
    schema.OPERATED_AT,
    schema.AIRLINE,
)

# KEYS: index, events, version. ARGV: retention minutes, max events, then (identity, minutes, json) per
# event -> {stored, replaced, unchanged, too_old, evicted, size, newest}
_RECORD = """
local retention, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local stored, replaced, unchanged, too_old, evicted = 0, 0, 0, 0, 0
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local top = newest[2] and tonumber(newest[2]) or nil
for i = 3, #ARGV, 3 do
  local score = tonumber(ARGV[i + 1])
  if top == nil or score > top then top = score end
end
local floor = top - retention
for i = 3, #ARGV, 3 do
  local identity, score, event = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  if score < floor then
    too_old = too_old + 1
  else
    local before = redis.call('HGET', KEYS[2], identity)
    if before == event then
      unchanged = unchanged + 1
    else
      if before then replaced = replaced + 1 else stored = stored + 1 end
      redis.call('HSET', KEYS[2], identity, event)
      redis.call('ZADD', KEYS[1], score, identity)
    end
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. floor)
local extra = redis.call('ZCARD', KEYS[1]) - #old - cap
local gone = old
if extra > 0 then
  local oldest = redis.call('ZRANGE', KEYS[1], #old, #old + extra - 1)
  for _, identity in ipairs(oldest) do table.insert(gone, identity) end
end
for _, identity in ipairs(gone) do
  redis.call('ZREM', KEYS[1], identity)
  redis.call('HDEL', KEYS[2], identity)
  evicted = evicted + 1
end
if stored + replaced + evicted > 0 then redis.call('INCR', KEYS[3]) end
return {stored, replaced, unchanged, too_old, evicted, redis.call('ZCARD', KEYS[1]),
        tostring(top)}
"""


#: how far a departure's actual time may lie from its schedule: a few hours early at most,
#: two days late at most (the 2017 file: 14 minutes early to 161 minutes late)
EARLIEST_DEPARTURE_HOURS = 6
LATEST_DEPARTURE_HOURS = 48
#: longest code (Emp-I, Vlo-I, Des-I) the feed keeps
MAX_CODE_LENGTH = 40
#: how far past the airport's clock a departure may be (clocks differ a little); later ones
#: have not happened: one in 2099 would move the feed's newest departure and evict the rest
FUTURE_TOLERANCE_MINUTES = 10


def airport_now(timezone: str) -> datetime:
    """The airport's local clock now, naive (as Fecha-I and Fecha-O are written)."""
    return datetime.now(ZoneInfo(timezone)).replace(tzinfo=None)


def latest_departure(timezone: str) -> datetime:
    """The latest actual time a departure posted now may have."""
    return airport_now(timezone) + timedelta(minutes=FUTURE_TOLERANCE_MINUTES)


def departure_event(
    scheduled: Any,
    departed: Any,
    flight_number: Any,
    destination: Any,
    carrier: Any,
    airline: Any = None,
    latest: datetime | None = None,
) -> dict[str, Any] | None:
    """A departure as the feed keeps it (times in one format, codes as text), or None when it
    is not one: a time that does not parse, a code empty or too long, an actual time more than
    EARLIEST_DEPARTURE_HOURS before or LATEST_DEPARTURE_HOURS after the scheduled one, or
    after ``latest`` (see :func:`latest_departure`)."""
    at, left = parse_scheduled(scheduled), parse_scheduled(departed)
    if at is None or left is None or (latest is not None and left > latest):
        return None
    hours = (left - at).total_seconds() / 3600
    if not -EARLIEST_DEPARTURE_HOURS <= hours <= LATEST_DEPARTURE_HOURS:
        return None
    codes = [clean_text(value) for value in (flight_number, destination, carrier)]
    if any(code is None or len(code) > MAX_CODE_LENGTH for code in codes):
        return None
    event = {
        schema.SCHEDULED_AT: at.strftime(schema.DATETIME_FORMAT),
        schema.OPERATED_AT: left.strftime(schema.DATETIME_FORMAT),
        schema.FLIGHT_NUMBER: codes[0],
        schema.DESTINATION: codes[1],
        schema.CARRIER_CODE: codes[2],
    }
    if isinstance(airline, str) and airline.strip():
        event[schema.AIRLINE] = airline.strip()[:200]
    return event


def identity(event: Mapping[str, Any]) -> str:
    """One scheduled flight (``flight_delay.features.live.IDENTITY_FIELDS``)."""
    return "|".join(str(event[name]).strip().upper() for name in IDENTITY_FIELDS)


class DepartureFeed:
    """The feed of one deployment (its key prefix) on the registry's Redis connection."""

    def __init__(self, client: redis.Redis, prefix: str, max_events: int) -> None:
        self.redis = client
        self.index_key = f"{prefix}:departures"
        self.events_key = f"{prefix}:departures:event"
        #: counts the batches that changed the feed: a reader's copy is current while it matches
        self.version_key = f"{prefix}:departures:version"
        self.max_events = max_events
        self._record = client.register_script(_RECORD)
        # this process's copy of the feed, indexed, and the version it is
        self._copy_lock = threading.Lock()
        self._copy: tuple[int, DepartureIndex] | None = None

    def record(self, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Keep ``events`` (checked: text fields, times as ``YYYY-MM-DD HH:MM:SS``)."""
        if not events:
            summary = self.summary()
            return {
                **dict.fromkeys(("stored", "replaced", "unchanged", "too_old", "evicted"), 0),
                "size": summary["size"],
                "newest_minute": summary["newest_minute"],
            }
        actual = minutes([event[schema.OPERATED_AT] for event in events])
        args: list[Any] = [FEED_RETENTION_MINUTES, self.max_events]
        for event, at in zip(events, actual, strict=True):
            kept = {name: event[name] for name in EVENT_FIELDS if event.get(name) is not None}
            args += [identity(event), int(at), json.dumps(kept, sort_keys=True)]
        stored, replaced, unchanged, too_old, evicted, size, newest = self._record(
            keys=[self.index_key, self.events_key, self.version_key], args=args
        )
        return {
            "stored": int(stored),
            "replaced": int(replaced),
            "unchanged": int(unchanged),
            "too_old": int(too_old),
            "evicted": int(evicted),
            "size": int(size),
            "newest_minute": int(float(newest)),
        }

    def before(self, as_of_minute: int) -> Departures:
        """The departures that left in the lookback before ``as_of_minute`` (never at or after
        it): two reads, whatever the number of flights asked about."""
        identities: Any = self.redis.zrangebyscore(
            self.index_key, as_of_minute - LOOKBACK_MINUTES, f"({as_of_minute}"
        )
        raw = self.redis.hmget(self.events_key, identities) if identities else []
        return Departures.from_events([json.loads(item) for item in raw if item is not None])

    def clear(self) -> None:
        """Forget every departure (a new version: readers' copies are dropped)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.index_key, self.events_key)
            pipe.incr(self.version_key)
            pipe.execute()

    def version(self) -> int:
        """How many batches have changed the feed (one read)."""
        return int(self.redis.get(self.version_key) or 0)

    def snapshot(self) -> tuple[int, Departures]:
        """Every departure the feed holds (at most its cap), with the version they are, read in
        one transaction."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self.version_key)
            pipe.hvals(self.events_key)
            version, events = pipe.execute()
        return int(version or 0), Departures.from_events(json.loads(item) for item in events)

    def indexed(self) -> DepartureIndex:
        """Every departure the feed holds, indexed: read whole and indexed again only when a
        batch changed the feed (one read per call otherwise). The features read only the
        lookback before each flight's as-of time, so holding more of the feed changes no
        answer."""
        version = self.version()
        with self._copy_lock:
            if self._copy is None or self._copy[0] != version:
                read, departures = self.snapshot()
                self._copy = (read, DepartureIndex(departures))
            return self._copy[1]

    def summary(self) -> dict[str, Any]:
        """How many departures the feed holds and the newest and oldest actual times."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zcard(self.index_key)
            pipe.zrange(self.index_key, 0, 0, withscores=True)
            pipe.zrange(self.index_key, -1, -1, withscores=True)
            size, oldest, newest = pipe.execute()
        return {
            "size": int(size),
            "oldest_minute": int(oldest[0][1]) if oldest else None,
            "newest_minute": int(newest[0][1]) if newest else None,
        }


def init_app(app: Any) -> None:
    """Give ``app`` its feed (``app.extensions["departure_feed"]``), on the registry's Redis."""
    app.extensions["departure_feed"] = DepartureFeed(
        app.extensions["model_registry"].redis,
        str(app.config["KEY_PREFIX"]),
        int(app.config["DEPARTURES_MAX_EVENTS"]),
    )
