"""The task model and the indexes that serve its list queries."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, false, func
from sqlalchemy.orm import Mapped, mapped_column

from taskapp.extensions import db
from taskapp.sqltypes import UTCDateTime


class Task(db.Model):
    """A user's task; ``created_at`` and ``updated_at`` are set by the database.

    ``version`` counts the task's writes: the ORM sends ``UPDATE/DELETE ... WHERE id = :id AND
    version = :read`` and raises StaleDataError when another writer got there first. The ETag
    derives from it.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        # One index per sort key, scoped to the owner, with id as the tie-breaker.
        Index("ix_tasks_user_created", "user_id", "created_at", "id"),
        Index("ix_tasks_user_updated", "user_id", "updated_at", "id"),
        Index("ix_tasks_user_title", "user_id", "title", "id"),
        # The same with the completed filter in front, so filtered pages stay index walks.
        Index("ix_tasks_user_completed_created_at", "user_id", "completed", "created_at", "id"),
        Index("ix_tasks_user_completed_updated_at", "user_id", "completed", "updated_at", "id"),
        Index("ix_tasks_user_completed_title", "user_id", "completed", "title", "id"),
        # Trigram indexes serve the case-insensitive substring search (PostgreSQL only): global
        # ones, cheaper for a user with very many tasks, and per-user ones (btree_gin), which
        # read only the caller's postings; the planner picks by the statistics.
        *(
            Index(
                f"ix_tasks_{column}_trgm",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            ).ddl_if(dialect="postgresql")
            for column in ("title", "description")
        ),
        *(
            Index(
                f"ix_tasks_user_{column}_trgm",
                "user_id",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            ).ddl_if(dialect="postgresql")
            for column in ("title", "description")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    completed: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, server_default=func.now(), onupdate=func.now()
    )
    version: Mapped[int] = mapped_column(server_default="1")

    __mapper_args__ = {
        "version_id_col": version,
        # Fetch created_at/updated_at with RETURNING in the INSERT or UPDATE itself.
        "eager_defaults": True,
    }


class TaskCount(db.Model):
    """How many tasks a user has, in all and completed: kept by triggers (migration 0003).

    Every insert, update and delete of tasks adjusts it in the same transaction, so a list
    without a search reads its total here instead of counting the user's rows. ``stamp``
    grows with every write of the user's tasks (migration 0006): the ETag of their lists.
    """

    __tablename__ = "task_counts"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    total: Mapped[int] = mapped_column(server_default="0")
    completed: Mapped[int] = mapped_column(server_default="0")
    stamp: Mapped[int] = mapped_column(BigInteger, server_default="0")
