"""Copies the tenant template schema into a new tenant's schema, in a time that does not grow with
the number of schemas in the database.

django-tenants' `clone_schema()` (PL/pgSQL) finds the template's objects through
`information_schema` and `pg_indexes`, views that go through every relation of every schema (and
check privileges on each): 0.5 s at 10 tenants, 1.8 s at 100, 8-10 s at 1,000 (up to a minute at
500, as the views' plans shift while the catalogs grow). This reads the template only
through pg_catalog, reached from the template's namespace oid by indexed lookups (`pg_depend` lists
a schema's tables and sequences), and makes the copy the way `clone_schema()` does, without its
detours:

- each table by `CREATE TABLE … (LIKE template.table INCLUDING ALL EXCLUDING IDENTITY)`, which
  copies columns, defaults, generated columns, check constraints, indexes (primary keys and unique
  constraints included), comments and storage from the stored definitions, so an index predicate is
  the template's exactly (a definition printed and parsed again may differ in its text);
- identity columns with sequences of the template's names, types and options (LIKE would make them
  bigint and name them after the table), and the template's other sequences, re-pointing the
  defaults that use them;
- the template's rows (applied migrations, content types, permissions, seeded rows) and the
  sequences' positions;
- the indexes renamed to the template's names (LIKE names them after the table and its columns;
  `clone_schema()` left unique constraints under those names, so a migration dropping one by name
  failed on every cloned tenant), then foreign keys and triggers from their printed definitions.

Definitions are printed with `search_path` set to the template alone, so references to its own
objects come out unqualified and resolve to the new schema when replayed with `search_path` set to
it, while anything elsewhere (pgvector's `public.vector`, a foreign key to a shared table) stays
qualified.

A template holding something this does not reproduce (a view, a function, a type, row security,
grants, inheritance…) is cloned by `clone_schema()` instead, with a warning: slow, but never a
silently different schema.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django_tenants.clone import CloneSchema

logger = logging.getLogger(__name__)


class TemplateNotClonable(Exception):
    """The template holds something this module does not copy."""


def schema_clone(*, source: str, target: str) -> None:
    """Creates schema `target` as a copy of `source`, rows included. All or nothing."""
    with transaction.atomic(), connection.cursor() as cursor:
        try:
            with transaction.atomic():
                _clone(cursor, source=source, target=target)
        except TemplateNotClonable as reason:
            logger.warning(
                "tenant template not clonable from the catalog, using clone_schema()",
                extra={"template": source, "reason": str(reason)},
            )
            CloneSchema().clone_schema(source, target, "DATA", set_connection=False)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class _Table:
    name: str
    unlogged: bool
    options: list[str] | None
    comment: str | None
    insert_columns: list[str] = field(default_factory=list)
    overriding: bool = False


@dataclass(frozen=True)
class _Sequence:
    name: str
    type_name: str  # an identity column's sequence takes the column's
    options: str  # INCREMENT BY … NO CYCLE, as CREATE SEQUENCE and identity columns take them
    last_value: int | None
    comment: str | None
    owner_table: int | None
    owner_column: str | None
    identity: str  # the owning column's attidentity: 'a', 'd', or '' for a plain sequence


@dataclass
class _Template:
    printed: str  # the schema's name as PostgreSQL prints it
    tables: dict[int, _Table]
    sequences: list[_Sequence]
    defaults: list[tuple[int, str, str]]  # (table, column, default) using the template's sequences
    # Per (table, constraint or not, definition after the name): the index names, oldest first.
    indexes: dict[tuple[str, bool, str], list[str]]
    foreign_keys: list[tuple[int, str, str]]
    triggers: list[tuple[str, str]]  # (the table's name as printed, definition)


# The catalogs hold every schema's objects. Each lookup here starts from the template's namespace
# oid, or from its tables' and sequences' oids, and goes by index one object at a time: a plan that
# filters a whole catalog instead reads every tenant's objects, and stale catalog statistics (a
# database growing a tenant at a time, or run without autovacuum) readily lead the planner to one.
# Hence per-table lateral subqueries, kept apart by OFFSET 0, and per-row scalar subqueries (an
# EXISTS may become a join): the lookup by the table's (or row's) oid is then the only plan that
# makes sense whatever the statistics.

# The template's tables and sequences (pg_depend lists what a schema holds), with what a copy
# would not reproduce.
RELATIONS = """
SELECT c.oid, c.relname, c.relkind, c.relpersistence, c.reloptions,
       obj_description(c.oid, 'pg_class'),
       concat_ws(', ',
           CASE WHEN c.relkind NOT IN ('r', 'S') THEN 'relkind ' || c.relkind::text END,
           CASE WHEN c.relacl IS NOT NULL THEN 'grants' END,
           CASE WHEN c.relowner <> current_user::regrole THEN 'another owner' END,
           CASE WHEN c.relrowsecurity OR c.relforcerowsecurity
                     OR EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)
                THEN 'row security' END,
           CASE WHEN EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = c.oid) THEN 'rules' END,
           CASE WHEN c.reltablespace <> 0 THEN 'a tablespace' END,
           CASE WHEN c.relkind = 'r' AND c.relreplident <> 'd' THEN 'replica identity' END,
           CASE WHEN c.relispartition OR c.relhassubclass THEN 'inheritance' END,
           CASE WHEN c.relkind = 'S' AND EXISTS (
               SELECT FROM pg_depend x
               WHERE x.refclassid = 'pg_class'::regclass AND x.refobjid = c.oid
                 AND x.classid NOT IN ('pg_class'::regclass, 'pg_attrdef'::regclass))
                THEN 'used by more than columns' END)
FROM pg_depend d
JOIN pg_class c ON c.oid = d.objid
WHERE d.classid = 'pg_class'::regclass
  AND d.refclassid = 'pg_namespace'::regclass AND d.refobjid = %(namespace)s
ORDER BY c.relname
"""

# Whatever else is in the schema (views and materialized views are relations, caught above;
# functions, types, operators… here), and what is set on the schema itself.
OTHER_OBJECTS = """
SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
FROM pg_depend d
WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = %(namespace)s
  AND d.classid <> 'pg_class'::regclass
UNION ALL
SELECT 'default privileges' FROM pg_default_acl WHERE defaclnamespace = %(namespace)s
UNION ALL
SELECT 'the schema''s owner, grants or comment' FROM pg_namespace n
WHERE n.oid = %(namespace)s AND (n.nspowner <> current_user::regrole OR n.nspacl IS NOT NULL
    OR obj_description(n.oid, 'pg_namespace') IS NOT NULL)
"""

SEQUENCES = """
SELECT c.relname, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax,
       s.seqstart, s.seqcache, s.seqcycle,
       pg_sequence_last_value(c.oid), obj_description(c.oid, 'pg_class'),
       o.attrelid, o.attname, COALESCE(o.attidentity, ''),
       o.attidentity <> '' AND o.atttypid <> s.seqtypid OR o.attrelid <> ALL(%(tables)s::oid[])
FROM unnest(%(sequences)s::oid[]) AS q (oid)
CROSS JOIN LATERAL (SELECT * FROM pg_class c WHERE c.oid = q.oid OFFSET 0) c
CROSS JOIN LATERAL (SELECT * FROM pg_sequence s WHERE s.seqrelid = q.oid OFFSET 0) s
LEFT JOIN LATERAL (
    SELECT a.attrelid, a.attname, a.attidentity, a.atttypid
    FROM pg_depend d
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.objid = q.oid
      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    OFFSET 0
) o ON true
ORDER BY c.relname
"""

# Each column; of its default, only one drawing from a template sequence (a serial column), which
# LIKE would leave drawing from the template's; and what a copy would not reproduce.
COLUMNS = """
SELECT t.oid, a.attname, a.attidentity, a.attgenerated,
       (SELECT pg_get_expr(ad.adbin, ad.adrelid) FROM pg_attrdef ad
        WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum
          AND (SELECT true FROM pg_depend d
               WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                 AND d.refclassid = 'pg_class'::regclass
                 AND d.refobjid = ANY(%(sequences)s::oid[])
               LIMIT 1)),
       a.attacl IS NOT NULL OR a.attfdwoptions IS NOT NULL
           OR COALESCE(a.attstattarget, -1) <> -1
           -- Some server builds stamp every new column with a pg_attver option of their own.
           OR EXISTS (SELECT FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\\_attver=%%')
FROM unnest(%(tables)s::oid[]) AS t (oid)
CROSS JOIN LATERAL (
    SELECT * FROM pg_attribute a
    WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    OFFSET 0
) a
ORDER BY t.oid, a.attnum
"""

CONSTRAINTS = """
SELECT t.oid, k.conname, k.contype, pg_get_constraintdef(k.oid), k.convalidated
FROM unnest(%(tables)s::oid[]) AS t (oid)
CROSS JOIN LATERAL (SELECT * FROM pg_constraint k WHERE k.conrelid = t.oid OFFSET 0) k
ORDER BY t.oid, k.conname
"""

# In the order LIKE copies them (a table's index list is ordered by oid). Also read from the copy.
INDEXES = """
SELECT (SELECT c.relname FROM pg_class c WHERE c.oid = t.oid),
       EXISTS (
           SELECT FROM pg_constraint k
           WHERE k.conrelid = t.oid AND k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x')),
       (SELECT i.relname FROM pg_class i WHERE i.oid = x.indexrelid),
       pg_get_indexdef(x.indexrelid),
       (SELECT i.reltablespace <> 0 FROM pg_class i WHERE i.oid = x.indexrelid)
           OR x.indisclustered OR x.indisreplident OR NOT x.indisvalid
FROM unnest(%(tables)s::oid[]) AS t (oid)
CROSS JOIN LATERAL (SELECT * FROM pg_index x WHERE x.indrelid = t.oid OFFSET 0) x
ORDER BY x.indexrelid
"""

NEW_RELATIONS = """
SELECT array_agg(d.objid) FROM pg_depend d
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_namespace'::regclass
  AND d.refobjid = (SELECT oid FROM pg_namespace WHERE nspname = %(target)s)
"""

TRIGGERS = """
SELECT (SELECT quote_ident(c.relname) FROM pg_class c WHERE c.oid = t.oid), g.tgname,
       pg_get_triggerdef(g.oid),
       g.tgenabled <> 'O' OR g.tgconstraint <> 0 OR obj_description(g.oid, 'pg_trigger') IS NOT NULL
FROM unnest(%(tables)s::oid[]) AS t (oid)
CROSS JOIN LATERAL (
    SELECT * FROM pg_trigger g WHERE g.tgrelid = t.oid AND NOT g.tgisinternal OFFSET 0
) g
ORDER BY t.oid, g.tgname
"""


def _fetch(cursor: Any, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    cursor.execute(query, params)
    return list(cursor.fetchall())


def _clone(cursor: Any, *, source: str, target: str) -> None:
    cursor.execute("SELECT current_setting('search_path')")
    (search_path,) = cursor.fetchone()
    template = _read_template(cursor, source=source)
    schema = _ident(target)
    cursor.execute(";\n".join(_create_statements(template, source=source, target=target)))
    renames = _index_renames(cursor, template, target=target)
    foreign_keys = [
        f"ALTER TABLE {schema}.{_ident(template.tables[relid].name)} "
        f"ADD CONSTRAINT {_ident(name)} {definition}"
        for relid, name, definition in template.foreign_keys
    ]
    triggers = [
        _on_target(definition, table=table, template=template, target=target)
        for table, definition in template.triggers
    ]
    # The connection's schema, which django-tenants sets once and remembers, holds again after.
    restore = f"SELECT set_config('search_path', {_literal(search_path)}, true)"
    cursor.execute(";\n".join([*renames, *foreign_keys, *triggers, restore]))


def _read_template(cursor: Any, *, source: str) -> _Template:
    cursor.execute(
        "SELECT oid, quote_ident(nspname) FROM pg_namespace WHERE nspname = %s", [source]
    )
    row = cursor.fetchone()
    if row is None:
        raise TemplateNotClonable(f"no schema {source!r}")
    namespace, printed = row
    # Definitions printed from here on name the template's own objects without the schema. JIT
    # would compile these short lookups, whose cost stale statistics overestimate.
    cursor.execute(
        "SELECT set_config('search_path', %s, true), set_config('jit', 'off', true)", [printed]
    )
    params: dict[str, Any] = {"namespace": namespace}

    tables: dict[int, _Table] = {}
    sequence_oids = []
    for oid, name, kind, persistence, options, comment, unsupported in _fetch(
        cursor, RELATIONS, params
    ):
        if unsupported:
            raise TemplateNotClonable(f"{name}: {unsupported}")
        if kind == "S":
            sequence_oids.append(oid)
        else:
            tables[oid] = _Table(
                name=name, unlogged=persistence == "u", options=options, comment=comment
            )
    params.update(tables=list(tables), sequences=sequence_oids)
    if others := [row[0] for row in _fetch(cursor, OTHER_OBJECTS, params)]:
        raise TemplateNotClonable(", ".join(sorted(others)))

    sequences = []
    for row in _fetch(cursor, SEQUENCES, params):
        name, type_name, increment, minimum, maximum, start, cache, cycle = row[:8]
        last_value, comment, owner_table, owner_column, identity, unusual = row[8:]
        if unusual:
            raise TemplateNotClonable(f"{name}: owned elsewhere or not of its column's type")
        sequences.append(
            _Sequence(
                name=name,
                type_name=type_name,
                options=f"INCREMENT BY {increment} MINVALUE {minimum} MAXVALUE {maximum} "
                f"START WITH {start} CACHE {cache} {'CYCLE' if cycle else 'NO CYCLE'}",
                last_value=last_value,
                comment=comment,
                owner_table=owner_table,
                owner_column=owner_column,
                identity=identity,
            )
        )
    defaults = []
    for relid, column, identity, generated, sequence_default, unusual in _fetch(
        cursor, COLUMNS, params
    ):
        table = tables[relid]
        if unusual:
            raise TemplateNotClonable(f"{table.name}.{column}: options, grants or statistics")
        if not generated:
            table.insert_columns.append(_ident(column))
        table.overriding = table.overriding or identity == "a"
        if sequence_default is not None:
            defaults.append((relid, column, sequence_default))

    foreign_keys = []
    for relid, name, kind, definition, validated in _fetch(cursor, CONSTRAINTS, params):
        if kind not in ("p", "u", "x", "c", "f") or not validated:
            raise TemplateNotClonable(f"constraint {name}: of type {kind} or not validated")
        if kind == "f":
            foreign_keys.append((relid, name, definition))
    return _Template(
        printed=printed,
        tables=tables,
        sequences=sequences,
        defaults=defaults,
        indexes=_indexes(cursor, params["tables"]),
        foreign_keys=foreign_keys,
        triggers=_triggers(cursor, params),
    )


def _indexes(cursor: Any, tables: list[int]) -> dict[tuple[str, bool, str], list[str]]:
    """Per (table, constraint or not, definition past the name): the names, in the order LIKE
    copies the indexes."""
    indexes: dict[tuple[str, bool, str], list[str]] = defaultdict(list)
    for table, is_constraint, name, definition, unusual in _fetch(
        cursor, INDEXES, {"tables": tables}
    ):
        if unusual:
            raise TemplateNotClonable(f"index {name}: a tablespace, clustered or invalid")
        indexes[(table, is_constraint, definition.split(" USING ", 1)[1])].append(name)
    return dict(indexes)


def _triggers(cursor: Any, params: dict[str, Any]) -> list[tuple[str, str]]:
    triggers = []
    for table, name, definition, unusual in _fetch(cursor, TRIGGERS, params):
        if unusual:
            raise TemplateNotClonable(
                f"trigger {name}: disabled, a constraint trigger or commented"
            )
        triggers.append((table, definition))
    return triggers


def _create_statements(template: _Template, *, source: str, target: str) -> list[str]:
    """The schema, its sequences and tables with their indexes, and the template's rows."""
    schema = _ident(target)
    tables = template.tables
    statements = [f"SELECT set_config('search_path', {_literal(schema)}, true)"]
    statements.append(f"CREATE SCHEMA {schema}")
    plain = [s for s in template.sequences if not s.identity]
    statements += [
        f"CREATE SEQUENCE {schema}.{_ident(s.name)} AS {s.type_name} {s.options}" for s in plain
    ]
    for table in tables.values():
        unlogged = "UNLOGGED " if table.unlogged else ""
        options = f" WITH ({', '.join(table.options)})" if table.options else ""
        statements.append(
            f"CREATE {unlogged}TABLE {schema}.{_ident(table.name)} "
            f"(LIKE {_ident(source)}.{_ident(table.name)} INCLUDING ALL EXCLUDING IDENTITY)"
            f"{options}"
        )
        if table.comment is not None:
            statements.append(
                f"COMMENT ON TABLE {schema}.{_ident(table.name)} IS {_literal(table.comment)}"
            )
    for sequence in template.sequences:
        qualified = f"{schema}.{_ident(sequence.name)}"
        if sequence.owner_table is not None and sequence.owner_column is not None:
            column = f"{schema}.{_ident(tables[sequence.owner_table].name)}"
            if sequence.identity:
                kind = "ALWAYS" if sequence.identity == "a" else "BY DEFAULT"
                statements.append(
                    f"ALTER TABLE {column} ALTER COLUMN {_ident(sequence.owner_column)} "
                    f"ADD GENERATED {kind} AS IDENTITY "
                    f"(SEQUENCE NAME {qualified} {sequence.options})"
                )
            else:
                statements.append(
                    f"ALTER SEQUENCE {qualified} OWNED BY {column}.{_ident(sequence.owner_column)}"
                )
        if sequence.comment is not None:
            statements.append(f"COMMENT ON SEQUENCE {qualified} IS {_literal(sequence.comment)}")
    statements += [
        f"ALTER TABLE {schema}.{_ident(tables[relid].name)} "
        f"ALTER COLUMN {_ident(column)} SET DEFAULT {default}"
        for relid, column, default in template.defaults
    ]
    for table in tables.values():
        columns = ", ".join(table.insert_columns)
        overriding = " OVERRIDING SYSTEM VALUE" if table.overriding else ""
        # Every name is quoted by _ident and comes from the catalog: S608 does not apply.
        statements.append(
            f"INSERT INTO {schema}.{_ident(table.name)} ({columns}){overriding} "  # noqa: S608
            f"SELECT {columns} FROM {_ident(source)}.{_ident(table.name)}"
        )
    statements += [
        f"SELECT pg_catalog.setval({_literal(f'{schema}.{_ident(s.name)}')}, {s.last_value})"
        for s in template.sequences
        if s.last_value is not None
    ]
    return statements


def _index_renames(cursor: Any, template: _Template, *, target: str) -> list[str]:
    """Gives the copied indexes the template's names (LIKE chose its own)."""
    new_relations = _fetch(cursor, NEW_RELATIONS, {"target": target})[0][0] or []
    copies = _indexes(cursor, new_relations)
    if {key: len(names) for key, names in copies.items()} != {
        key: len(names) for key, names in template.indexes.items()
    }:
        raise TemplateNotClonable("the copied indexes do not match the template's")
    in_use = {name for names in copies.values() for name in names}
    # Besides the copies' names, a table or sequence may hold a name one of them wants.
    cursor.execute("SELECT relname FROM pg_class WHERE oid = ANY(%s::oid[])", [new_relations])
    in_use.update(row[0] for row in cursor.fetchall())

    schema = _ident(target)
    first: list[str] = []
    then: list[str] = []
    for key, names in template.indexes.items():
        table, is_constraint, _ = key
        for current, wanted in zip(copies[key], names, strict=True):
            if current == wanted:
                continue
            if wanted in in_use:
                # Taken by another copy still to be renamed: through a name of its own first.
                interim = f"_clone_{len(then)}_{current}"[:63]
                first.append(_rename(schema, table, is_constraint, current, interim))
                then.append(_rename(schema, table, is_constraint, interim, wanted))
            else:
                first.append(_rename(schema, table, is_constraint, current, wanted))
                in_use.add(wanted)
    return first + then


def _rename(schema: str, table: str, is_constraint: bool, old: str, new: str) -> str:
    if is_constraint:  # renames its index too
        return (
            f"ALTER TABLE {schema}.{_ident(table)} RENAME CONSTRAINT {_ident(old)} TO {_ident(new)}"
        )
    return f"ALTER INDEX {schema}.{_ident(old)} RENAME TO {_ident(new)}"


def _on_target(definition: str, *, table: str, template: _Template, target: str) -> str:
    """`pg_get_triggerdef` always qualifies the table; points the trigger at the copy."""
    qualified = f" ON {template.printed}.{table} "
    if definition.count(qualified) != 1:
        raise TemplateNotClonable(f"unexpected trigger definition {definition!r}")
    return definition.replace(qualified, f" ON {_ident(target)}.{table} ")
