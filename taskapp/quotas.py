"""Limits on the rows a client makes the server store: one check, one answer, for every kind.

Each kind's writer first takes the lock named in QUOTAS, which serialises that user's writers
of the kind until the commit, then writes its rows, then calls ``check_quota`` with a count
that includes them. A concurrent writer waits on the lock and counts after this one has
committed or rolled back, so no race gets past a limit. Sessions are the one kind bounded by
eviction instead (auth.service.login): refusing a login would lock the owner out.
"""

from typing import NamedTuple

from flask import current_app

from taskapp.errors import Conflict
from taskapp.extensions import db
from taskapp.schemas import LABELS_PER_TASK


class Quota(NamedTuple):
    """One kind of stored row and its limit: the setting (0: no limit), or a fixed number."""

    setting: str
    noun: str
    advice: str
    lock: str
    fixed: int | None = None

    def limit(self) -> int:
        """The limit in force (0: none)."""
        return self.fixed if self.fixed is not None else current_app.config[self.setting]


# Subtasks are tasks (MAX_TASKS_PER_USER); a label on a task is limited per task.
QUOTAS = {
    "tasks": Quota(
        "MAX_TASKS_PER_USER",
        "tasks",
        "delete some first",
        "the user's queue, exclusive near the limit (tasks.locks.lock_user_tasks)",
    ),
    "lists": Quota(
        "LISTS_PER_USER",
        "lists",
        "delete some first",
        "the users row (lists.service.create_list)",
    ),
    "labels": Quota(
        "LABELS_PER_USER",
        "labels",
        "delete unused ones first (DELETE /labels/{name})",
        "the user's queue, exclusive: every writer that makes labels writes tasks",
    ),
    "task_labels": Quota(
        "LABELS_PER_TASK",
        "labels on one task",
        "remove some first",
        "the task rows (tasks.locks.lock_tasks)",
        fixed=LABELS_PER_TASK,
    ),
    "idempotency_keys": Quota(
        "IDEMPOTENCY_KEYS_PER_USER",
        "Idempotency-Keys in use (each is kept IDEMPOTENCY_KEY_HOURS)",
        "send this request without one, or retry once older keys expire",
        "a per-user advisory lock (idempotency.service.claim_key)",
    ),
}


def check_quota(kind: str, count: int) -> None:
    """Call under the kind's lock once the new rows are written, with the count that now
    includes them: Conflict, everything rolled back, when it is over the kind's limit."""
    quota = QUOTAS[kind]
    limit = quota.limit()
    if limit and count > limit:
        db.session.rollback()
        name = quota.setting if quota.fixed is None else "fixed"
        raise Conflict(f"Limit reached: at most {limit} {quota.noun} ({name}); {quota.advice}")
