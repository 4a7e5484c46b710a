"""Renewing state in a child process after `os.fork()`, as the OpenTelemetry SDK's batch processors do.

A fork copies only the thread that called it. A lock that another thread held at that instant stays
held in the child, by a thread that does not exist there, and the child's first call that takes it
hangs for ever (gunicorn and uWSGI fork workers after the application, and its instrumentation, are
loaded). Each object that owns locks, connections or threads registers a method that renews them in
the child; the registration holds the object weakly, so that it does not outlive its owner.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

_logger = logging.getLogger(__name__)


def renew_after_fork(method: Callable[[], None]) -> None:
    """Call `method` (a bound method) in every child forked from now on, while its object lives."""
    reference = weakref.WeakMethod(method)

    def renew() -> None:
        bound = reference()
        if bound is not None:
            bound()

    _register(renew)


def _register(renew: Callable[[], None]) -> None:
    register = getattr(os, "register_at_fork", None)
    if register is None:  # pragma: no cover - Windows has no fork
        return

    def after_in_child() -> None:
        try:
            renew()
        except Exception:
            _logger.debug("tokenbudget: renewing state after a fork failed", exc_info=True)

    register(after_in_child=after_in_child)


def renew_locks_after_fork(owner: object, *names: str) -> None:
    """Give `owner` a new `threading.Lock` under each of `names` in every child forked from now on."""
    reference = weakref.ref(owner)

    def renew() -> None:
        target = reference()
        if target is not None:
            for name in names:
                setattr(target, name, threading.Lock())

    _register(renew)


def hold_lock_across_fork(owner: object, name: str) -> None:
    """Take `owner`'s lock `name` before every fork from now on, and release it after in the parent; in
    the child, a new lock. For a lock that guards every use of a SQLite connection: a fork while another
    thread is inside SQLite copies SQLite's own mutexes held, and the child's first use of that file
    (through a connection of its own) can wait on them. With the lock held, no thread of the parent is
    inside SQLite through this owner when the process forks."""
    register = getattr(os, "register_at_fork", None)
    if register is None:  # pragma: no cover - Windows has no fork
        return
    reference = weakref.ref(owner)
    held: list[threading.Lock] = []

    def before() -> None:
        target = reference()
        if target is not None:
            lock = getattr(target, name)
            lock.acquire()
            held.append(lock)

    def after_in_parent() -> None:
        while held:
            held.pop().release()

    def after_in_child() -> None:
        held.clear()
        target = reference()
        if target is not None:
            setattr(target, name, threading.Lock())

    register(before=before, after_in_parent=after_in_parent, after_in_child=after_in_child)
