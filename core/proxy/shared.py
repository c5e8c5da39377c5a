"""The state every worker of one balancer process shares: health marks and sticky affinity entries.

With ``--workers N`` each worker is a process with its own :class:`~balancedesk.core.proxy.runtime.Runtime`;
without this, a member one worker found dead would still be tried by the others, and a key one worker moved
to B during an outage would go elsewhere on another. :class:`SharedState` is one anonymous shared mapping
(``mmap(-1, n)``: ``MAP_SHARED | MAP_ANONYMOUS``) made by the parent before it forks, so every worker maps
the same pages; :class:`SharedGroup` is one group's view of it, given to that group's ``Runtime``.

What is in it, and the rules:

* **Health marks**: per (group, member) slot, the passive mark's deadline (``disabled until``, a
  ``CLOCK_MONOTONIC`` time: that clock is system-wide, so a deadline one worker set means the same instant
  to every other; 0 = no mark). A worker that marks a member, or clears a mark by a successful connect,
  writes its deadline there and bumps the mapping's **generation**. Before every pick a worker compares the
  generation with the one it last saw (one read of shared memory, no system call) and, when it moved, adopts
  every member's deadline (``GroupBalancer.adopt_mark``). So after one worker's failed connect no other
  worker tries that member before its retryDelay ends. Slots are claimed once per (group, member) and never
  given back; past ``SHARED_MEMBER_SLOTS`` a member's marks stay with the worker that made them (counted
  ``unshared``). Active health checks stay per worker (each probes for itself).
* **Sticky entries**: a :class:`~balancedesk.core.balance.sticky.StickyStore` — a set-associative table of
  ``STICKY_ENTRIES`` slots (``STICKY_WAYS`` per set) holding the keys displaced from their rendezvous choice
  (key hash, member slot, last use). A key is identified by ``hash(key) ^ hash(groupID)``: the forked workers
  share the interpreter's hash seed, so they agree; two keys with one 64-bit hash would share an entry. A
  lookup reads the key's set without a lock and restarts the entry's idle clock with one store; a put, a
  discard or an expiry takes the lock (rare: only displaced keys make entries). A full set evicts its entry
  idle longest. ``sweep`` looks at ``STICKY_SWEEP_SLOTS`` slots per call, round the table.
* **Writes** take one ``multiprocessing`` lock (a futex-backed semaphore in shared memory: no system call
  while uncontended). Readers never lock: a reader that saw a torn slot (an id or a hash being written)
  ignores it, and the generation is bumped after the write, so the next pick reads it again.
"""

from __future__ import annotations

import hashlib
import mmap
import multiprocessing
from collections.abc import Iterable, Iterator

from balancedesk.core.balance import StickyCounts
from balancedesk.core.proxy import limits

_HEADER_WORDS = 8  # generation, member slots claimed, unshared, sticky entries, evictions, expiries, –, –
GEN_WORD, _CLAIMED, _UNSHARED, _ENTRIES, _EVICTIONS, _EXPIRIES = range(6)
_DIGEST = 16  # bytes of a (group, member) slot's identity (blake2b)


def _digest(group_id: str, member_id: str) -> bytes:
    return hashlib.blake2b(f"{group_id}\x00{member_id}".encode(), digest_size=_DIGEST).digest()


class SharedState:
    """One balancer process's shared mapping. Make it before forking the workers; each worker then makes a
    :class:`SharedGroup` per group it serves (``group(...)``)."""

    def __init__(self, *, workers: int, member_slots: int = limits.SHARED_MEMBER_SLOTS,
                 sticky_entries: int = limits.STICKY_ENTRIES, ways: int = limits.STICKY_WAYS,
                 idle_s: float = limits.STICKY_IDLE_S) -> None:
        sets = sticky_entries // ways
        if sets < 1 or sets & (sets - 1):
            raise ValueError("sticky_entries / ways must be a power of two")
        self.workers = workers
        self.member_slots = member_slots
        self.capacity = sets * ways
        self.ways = ways
        self.idle_s = idle_s
        self._set_mask = sets - 1
        self.lock = multiprocessing.get_context("fork").Lock()
        o_ids = _HEADER_WORDS * 8
        o_until = o_ids + member_slots * _DIGEST
        o_fail = o_until + member_slots * 8
        o_hash = o_fail + member_slots * 8
        o_mslot = o_hash + self.capacity * 8
        o_last = o_mslot + self.capacity * 8
        size = o_last + self.capacity * 8
        self._mm = mmap.mmap(-1, size)  # anonymous and shared: the forked workers see the same pages
        view = memoryview(self._mm)
        self.header = view[:o_ids].cast("q")
        self.ids = view[o_ids:o_until]
        self.until = view[o_until:o_fail].cast("d")
        self.failures = view[o_fail:o_hash].cast("q")  # failed connects (or requests) by every worker
        self.hashes = view[o_hash:o_mslot].cast("q")
        self.mslots = view[o_mslot:o_last].cast("q")
        self.lasts = view[o_last:size].cast("d")

    def group(self, group_id: str) -> SharedGroup:
        return SharedGroup(self, group_id)

    def generation(self) -> int:
        return int(self.header[GEN_WORD])

    # member slots (claimed under the lock) --------------------------------------------------------
    def slot_of(self, digest: bytes) -> int | None:
        """The slot of (group, member) ``digest``, claimed if it has none yet; None when every slot is taken."""
        found = self._find(digest)
        if found is not None:
            return found
        with self.lock:
            found = self._find(digest)
            if found is not None:
                return found
            n = int(self.header[_CLAIMED])
            if n >= self.member_slots:
                self.header[_UNSHARED] += 1
                return None
            self.until[n] = 0.0
            self.failures[n] = 0
            self.ids[n * _DIGEST:(n + 1) * _DIGEST] = digest
            self.header[_CLAIMED] = n + 1
            return n

    def _find(self, digest: bytes) -> int | None:
        ids = self.ids
        for i in range(int(self.header[_CLAIMED])):
            if ids[i * _DIGEST:(i + 1) * _DIGEST] == digest:
                return i
        return None

    def digest_at(self, slot: int) -> bytes:
        return bytes(self.ids[slot * _DIGEST:(slot + 1) * _DIGEST])

    def publish_mark(self, slot: int, until: float | None, *, failed: bool = False) -> None:
        with self.lock:
            self.until[slot] = until if until is not None else 0.0
            if failed:
                self.failures[slot] += 1
            self.header[GEN_WORD] += 1

    def counts(self) -> StickyCounts:
        h = self.header
        return StickyCounts(int(h[_ENTRIES]), self.capacity, self.idle_s, int(h[_EVICTIONS]), int(h[_EXPIRIES]))

    def unshared(self) -> int:
        return int(self.header[_UNSHARED])

    def close(self) -> None:
        for v in (self.header, self.ids, self.until, self.failures, self.hashes, self.mslots, self.lasts):
            v.release()
        self._mm.close()


class SharedGroup:
    """One group's view of a :class:`SharedState`: its members' marks, and a
    :class:`~balancedesk.core.balance.sticky.StickyStore` over the shared sticky table."""

    def __init__(self, state: SharedState, group_id: str) -> None:
        self.state = state
        self.group_id = group_id
        self.capacity = state.capacity
        self.idle_s = state.idle_s
        self._salt = hash(group_id)
        self._slot: dict[str, int] = {}  # memberID → its slot (members of the current config that have one)
        self._member: dict[int, str] = {}  # the other way
        self._cursor = 0  # where the next sweep starts

    # marks ----------------------------------------------------------------------------------------
    def bind(self, member_ids: Iterable[str]) -> None:
        """The group's members now (at start and after every config change): their slots, claimed if new."""
        self._slot = {}
        for mid in member_ids:
            slot = self.state.slot_of(_digest(self.group_id, mid))
            if slot is not None:
                self._slot[mid] = slot
        self._member = {s: m for m, s in self._slot.items()}

    def publish(self, member_id: str, until: float | None, *, failed: bool = False) -> None:
        """This worker's mark of ``member_id`` changed (``until`` None: cleared; ``failed``: by a failure,
        counted for all workers)."""
        slot = self._slot.get(member_id)
        if slot is not None:
            self.state.publish_mark(slot, until, failed=failed)

    def failures(self, member_id: str) -> int | None:
        """Failures of ``member_id`` counted by every worker (None: it has no shared slot)."""
        slot = self._slot.get(member_id)
        return int(self.state.failures[slot]) if slot is not None else None

    def marks(self) -> Iterator[tuple[str, float | None]]:
        """Every bound member's shared deadline (None: no mark)."""
        until = self.state.until
        for mid, slot in self._slot.items():
            t = until[slot]
            yield mid, (t if t > 0.0 else None)

    # the StickyStore protocol ----------------------------------------------------------------------
    def _hash(self, key: str) -> int:
        return hash(key) ^ self._salt or 1  # 0 marks an empty slot

    def _set(self, h: int) -> range:
        st = self.state
        base = (h & st._set_mask) * st.ways
        return range(base, base + st.ways)

    def get(self, key: str, *, now: float) -> str | None:
        st = self.state
        h = hash(key) ^ self._salt or 1
        base = (h & st._set_mask) * st.ways
        hashes = st.hashes
        row = hashes[base:base + st.ways].tolist()  # the key's set, compared in C
        if h not in row:
            return None  # the usual case: a key on its rendezvous choice has no entry
        i = base + row.index(h)
        mslot = int(st.mslots[i])
        last = st.lasts[i]
        if hashes[i] != h:  # rewritten while read
            return None
        if now - last >= st.idle_s:
            with st.lock:
                if hashes[i] == h:
                    self._clear(i)
                    st.header[_EXPIRIES] += 1
            return None
        member = self._member.get(mslot)
        if member is None:  # a member this worker's config does not have (yet, or any more)
            return None
        st.lasts[i] = now
        return member

    def put(self, key: str, member_id: str, *, now: float) -> None:
        slot = self._slot.get(member_id)
        if slot is None:
            return  # a member without a shared slot: the key cannot be remembered for every worker
        st = self.state
        h = self._hash(key)
        with st.lock:
            free = oldest = -1
            for i in self._set(h):
                hi = st.hashes[i]
                if hi == h:
                    st.mslots[i] = slot
                    st.lasts[i] = now
                    return
                if hi == 0 or now - st.lasts[i] >= st.idle_s:
                    if free < 0:
                        free = i
                elif oldest < 0 or st.lasts[i] < st.lasts[oldest]:
                    oldest = i
            if free >= 0:
                if st.hashes[free] != 0:
                    self._clear(free)
                    st.header[_EXPIRIES] += 1
                i = free
            else:
                i = oldest
                self._clear(i)
                st.header[_EVICTIONS] += 1
            st.mslots[i] = slot
            st.lasts[i] = now
            st.hashes[i] = h  # last: a reader that sees the hash sees the rest
            st.header[_ENTRIES] += 1

    def discard(self, key: str) -> None:
        st = self.state
        h = self._hash(key)
        with st.lock:
            for i in self._set(h):
                if st.hashes[i] == h:
                    self._clear(i)
                    return

    def _clear(self, i: int) -> None:  # under the lock
        st = self.state
        st.hashes[i] = 0
        st.header[_ENTRIES] -= 1

    def sweep(self, *, now: float) -> int:
        """Forget entries idle past ``idle_s`` among the next ``STICKY_SWEEP_SLOTS`` slots (round the table)."""
        st = self.state
        start = self._cursor
        stop = min(start + limits.STICKY_SWEEP_SLOTS, st.capacity)
        self._cursor = stop % st.capacity
        hashes, lasts, idle = st.hashes, st.lasts, st.idle_s
        stale = [i for i in range(start, stop) if hashes[i] != 0 and now - lasts[i] >= idle]
        if not stale:
            return 0
        n = 0
        with st.lock:
            for i in stale:
                if hashes[i] != 0 and now - lasts[i] >= idle:
                    self._clear(i)
                    n += 1
            st.header[_EXPIRIES] += n
        return n

    def counts(self) -> StickyCounts:
        return self.state.counts()
