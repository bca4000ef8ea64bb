"""Migration operations shared by the apps' migrations."""

from __future__ import annotations

from django.db import migrations, models


def like_twin_dropped(
    *, model_name: str, field_name: str, field: models.Field, table: str, index_name: str, name: str
) -> migrations.SeparateDatabaseAndState:
    """A text column's `db_index=True` (a btree and a `varchar_pattern_ops` twin for `LIKE`)
    becomes a `Meta.indexes` entry called `name`: the twin is dropped and the btree renamed, so
    no index is built again on a large table. Each index is written with every row; the twin
    served no query (docs/performance.md, change 42)."""
    column = field_name
    return migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.AlterField(model_name=model_name, name=field_name, field=field),
            migrations.AddIndex(
                model_name=model_name, index=models.Index(fields=[field_name], name=name)
            ),
        ],
        database_operations=[
            migrations.RunSQL(
                sql=[
                    f'DROP INDEX IF EXISTS "{index_name}_like"',
                    f'ALTER INDEX IF EXISTS "{index_name}" RENAME TO "{name}"',
                    f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")',
                ],
                reverse_sql=[
                    f'ALTER INDEX IF EXISTS "{name}" RENAME TO "{index_name}"',
                    f'CREATE INDEX IF NOT EXISTS "{index_name}_like" ON "{table}"'
                    f' ("{column}" varchar_pattern_ops)',
                ],
            )
        ],
    )
