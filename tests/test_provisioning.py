"""`provision_tenant` exactly as CONTRACT §3, run as a real command against the test database, and
the copy of the template schema it makes (tenants.schema_clone)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.search import SearchQuery
from django.db import DataError, connection, transaction
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_context, schema_exists
from psycopg import sql

from agents.models import Agent
from billing.selectors import credit_balance_get
from knowledge.models import KnowledgeDocument
from tenants import schema_clone as schema_clone_module
from tenants import services
from tenants.connection import tenant_connection
from tenants.models import Domain, Tenant
from tenants.schema_clone import schema_clone
from tenants.selectors import api_key_get_for_raw_key, tenant_get_by_schema, tenant_get_by_slug
from tenants.services import InvalidSlug, TenantExists, tenant_provision
from tests import support

TEMPLATE = settings.TENANT_BASE_SCHEMA


def _provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "provision_tenant", *args],
        cwd=support.ROOT,
        env=support.child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _drop(slug: str) -> None:
    tenant_connection().set_schema_to_public()
    tenant = Tenant.objects.filter(schema_name=slug).first()
    if tenant:
        tenant.delete(force_drop=True)


def test_provision_prints_one_json_line_and_creates_a_working_tenant(committed_db: dict) -> None:
    try:
        result = _provision(
            "shop_one",
            "--name",
            "Shop One",
            "--credits",
            "250",
            "--domain",
            "shop.example.test",
            "--json",
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1
        payload = json.loads(lines[0])
        assert payload["slug"] == payload["schema"] == "shop_one"
        assert payload["admin_url"].endswith("/t/shop_one/admin/")
        assert schema_exists("shop_one")
        api_key = api_key_get_for_raw_key(raw_key=payload["api_key"])
        assert api_key is not None
        assert api_key.tenant.schema_name == "shop_one"
        assert Domain.objects.get(domain="shop.example.test").tenant.schema_name == "shop_one"
        with schema_context("shop_one"):
            assert credit_balance_get() == 250
            # The cloned schema has every tenant table and none of another tenant's rows.
            assert Agent.objects.count() == 0
    finally:
        _drop("shop_one")


@pytest.mark.parametrize("slug", ["Bad", "ab", "1abc", "public", "pg_shop", "has-dash", "x" * 64])
def test_invalid_slug_exits_1_with_one_line(committed_db: dict, slug: str) -> None:
    result = _provision(slug, "--name", "X", "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "slug" in result.stderr.lower()
    assert not Tenant.objects.filter(schema_name=slug).exists()


def test_existing_slug_exits_1_and_leaves_the_tenant_alone(committed_db: dict) -> None:
    existing = committed_db["a"]
    result = _provision(existing.slug, "--name", "Impostor", "--json")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: A tenant with the slug '{existing.slug}' already exists."
    ]
    assert Tenant.objects.get(schema_name=existing.slug).name == "Tenant A"


def test_service_refuses_bad_and_duplicate_slugs(tenant_a) -> None:
    with pytest.raises(InvalidSlug):
        tenant_provision(slug="information_schema", name="x")
    with pytest.raises(TenantExists):
        tenant_provision(slug=tenant_a.slug, name="x")


def test_template_schema_is_not_a_tenant_anyone_reaches(tenant_a, client) -> None:
    assert Tenant.objects.filter(schema_name="_template", is_template=True).exists()
    assert client.get("/t/_template/admin/").status_code == 404
    # Its row is found by schema (one memo entry serves both lookups), never by slug.
    assert tenant_get_by_schema(schema_name="_template").is_template
    assert tenant_get_by_slug(slug="_template") is None


# --- The copy of the template (tenants.schema_clone) ----------------------------------------

CATALOG = {
    "schema": """
        SELECT pg_get_userbyid(n.nspowner), n.nspacl::text, obj_description(n.oid, 'pg_namespace')
        FROM pg_namespace n WHERE n.nspname = %(schema)s""",
    "tables": """
        SELECT c.relname, c.relkind, c.relpersistence, c.reloptions::text,
               obj_description(c.oid, 'pg_class'), pg_get_userbyid(c.relowner), c.relacl::text,
               c.relrowsecurity, c.relreplident
        FROM pg_class c
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind NOT IN ('i', 'S')""",
    "columns": """
        SELECT c.relname, a.attname, row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
               format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
               a.attidentity, a.attgenerated, a.attcollation, a.attstorage, a.attcompression,
               col_description(c.oid, a.attnum)
        FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind NOT IN ('i', 'S')""",
    "indexes": """
        SELECT c.relname, i.relname, pg_get_indexdef(x.indexrelid), x.indisvalid,
               obj_description(i.oid, 'pg_class')
        FROM pg_index x
        JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        WHERE c.relnamespace = %(schema)s::regnamespace""",
    "constraints": """
        SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid), k.convalidated,
               obj_description(k.oid, 'pg_constraint')
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        WHERE k.connamespace = %(schema)s::regnamespace""",
    "sequences": """
        SELECT s.relname, format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin,
               q.seqmax, q.seqcache, q.seqcycle, pg_sequence_last_value(s.oid), t.relname,
               a.attname, d.deptype
        FROM pg_class s JOIN pg_sequence q ON q.seqrelid = s.oid
        LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
            AND d.refclassid = 'pg_class'::regclass
        LEFT JOIN pg_class t ON t.oid = d.refobjid
        LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE s.relnamespace = %(schema)s::regnamespace""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = %(schema)s::regnamespace AND NOT t.tgisinternal""",
    "foreign key triggers": """
        SELECT c.relname, count(*)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = %(schema)s::regnamespace AND t.tgisinternal GROUP BY c.relname""",
    "views": """
        SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'v'""",
    "functions and types": """
        SELECT 'function', proname FROM pg_proc WHERE pronamespace = %(schema)s::regnamespace
        UNION ALL
        SELECT 'type', typname FROM pg_type
        WHERE typnamespace = %(schema)s::regnamespace AND typrelid = 0 AND typelem = 0""",
}


def _catalog(schema: str) -> dict[str, list[tuple[object, ...]]]:
    """What defines a schema, with its own name replaced, and every table's rows."""

    def unnamed(value: object) -> object:
        if isinstance(value, str):
            return value.replace(f'"{schema}".', "<schema>.").replace(f"{schema}.", "<schema>.")
        return value

    dump: dict[str, list[tuple[object, ...]]] = {}
    with connection.cursor() as cursor:
        for what, query in CATALOG.items():
            cursor.execute(query, {"schema": schema})
            dump[what] = sorted(
                (tuple(unnamed(v) for v in row) for row in cursor.fetchall()), key=repr
            )
        rows = []
        for table, *_rest in dump["tables"]:
            cursor.execute(
                sql.SQL(
                    "SELECT count(*), md5(COALESCE(string_agg(t::text, ',' ORDER BY t::text), ''))"
                    " FROM {}.{} t"
                ).format(sql.Identifier(schema), sql.Identifier(str(table)))
            )
            rows.append((table, *cursor.fetchone()))
        dump["rows"] = rows
    return dump


def _drop_schema(schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_a_new_tenant_is_the_template_exactly(committed_db: dict) -> None:
    """Every column, default, identity, generated column, index (with its predicate as stored),
    constraint, sequence (and its position), trigger and row of the template, under its names."""
    try:
        tenant_provision(slug="clone_same", name="Clone")
        template, copy = _catalog(TEMPLATE), _catalog("clone_same")
        assert copy == template
        assert len(template["tables"]) > 40
        assert any(row[7] == "s" for row in template["columns"])  # Message.search_vector
        assert any(row[6] == "d" for row in template["columns"])  # identity columns
        assert any("WHERE" in str(row[2]) for row in template["indexes"])  # partial indexes
        assert {row[0]: row[1] for row in template["rows"]}["django_migrations"] != 0
    finally:
        _drop("clone_same")


def test_the_copy_differs_from_clone_schema_only_where_clone_schema_strays(
    committed_db: dict,
) -> None:
    """django-tenants' clone_schema(), which provisioning used before, names unique constraints
    after their table (a migration dropping one by name would fail), makes integer identity
    sequences bigint and grants table owners what they hold anyway. Apart from that the two
    copies are the same."""
    try:
        tenant_provision(slug="clone_new", name="Clone")
        with transaction.atomic():
            CloneSchema().clone_schema(TEMPLATE, "clone_old")
        tenant_connection().set_schema_to_public()
        new, old = _catalog("clone_new"), _catalog("clone_old")

        def names(dump: dict[str, list[tuple[object, ...]]], what: str) -> set[object]:
            return {row[1] for row in dump[what]}

        strayed = names(old, "constraints") ^ names(new, "constraints")
        assert strayed
        assert {row[2] for row in old["constraints"] + new["constraints"] if row[1] in strayed} == {
            "u"
        }
        assert names(old, "indexes") ^ names(new, "indexes") == strayed
        # Without their names, the constraints and indexes are the same.
        assert sorted(row[:1] + row[2:] for row in new["constraints"]) == sorted(
            row[:1] + row[2:] for row in old["constraints"]
        )
        assert sorted(
            (row[0], str(row[2]).split(" ON ", 1)[1], *row[3:]) for row in new["indexes"]
        ) == sorted((row[0], str(row[2]).split(" ON ", 1)[1], *row[3:]) for row in old["indexes"])
        assert any(row[1] == "integer" for row in new["sequences"])
        assert [row[:1] + row[2:] for row in new["sequences"]] == [
            row[:1] + row[2:] for row in old["sequences"]
        ]
        assert [row[:6] + row[7:] for row in new["tables"]] == [
            row[:6] + row[7:] for row in old["tables"]
        ]
        for what in CATALOG.keys() - {"constraints", "indexes", "sequences", "tables"}:
            assert new[what] == old[what], what
        assert new["rows"] == old["rows"]
    finally:
        _drop("clone_new")
        _drop_schema("clone_old")


SYNTHETIC_TEMPLATE = """
CREATE SCHEMA clone_src;
CREATE SEQUENCE clone_src.loose_seq START 100;
SELECT nextval('clone_src.loose_seq');
CREATE TABLE clone_src.parent (
    id integer GENERATED ALWAYS AS IDENTITY
        (SEQUENCE NAME clone_src.renamed_parent_ids START 5 INCREMENT 2) PRIMARY KEY,
    code varchar(20) COLLATE "C" NOT NULL,
    status varchar(10) NOT NULL DEFAULT 'new',
    title text,
    body text,
    doc tsvector GENERATED ALWAYS AS
        (to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(body, ''))) STORED,
    CONSTRAINT parent_code_named UNIQUE (code),
    CONSTRAINT parent_status_valid CHECK (status IN ('new', 'done'))
) WITH (fillfactor = 80);
CREATE TABLE clone_src.child (
    n serial,
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    parent_id integer NOT NULL REFERENCES clone_src.parent (id) DEFERRABLE INITIALLY DEFERRED,
    sibling_id bigint REFERENCES clone_src.child (id) ON DELETE SET NULL,
    loose bigint DEFAULT nextval('clone_src.loose_seq')
);
CREATE UNLOGGED TABLE clone_src.scratch (k text PRIMARY KEY, v jsonb);
CREATE INDEX parent_open ON clone_src.parent (status) WHERE status IN ('new', 'done');
CREATE INDEX parent_lower_code ON clone_src.parent (lower(code));
CREATE INDEX parent_doc ON clone_src.parent USING gin (doc);
CREATE TRIGGER child_unchanged BEFORE UPDATE ON clone_src.child
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
COMMENT ON TABLE clone_src.parent IS 'parents';
COMMENT ON COLUMN clone_src.parent.code IS 'the code';
COMMENT ON INDEX clone_src.parent_open IS 'open ones';
INSERT INTO clone_src.parent (code, title) VALUES ('a', 'A title'), ('b', 'B');
INSERT INTO clone_src.child (parent_id) SELECT id FROM clone_src.parent;
"""


def _vector_schema() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def test_schema_clone_copies_what_migrations_make(committed_db: dict) -> None:
    """Identity columns (always and by default, a renamed sequence), serial and shared sequences
    with their positions, a generated column, collations, named unique and check constraints,
    partial, expression and GIN indexes, foreign keys within the schema, a trigger, an unlogged
    table, storage options, comments, rows — and pgvector columns where the server has it."""
    vector = _vector_schema()
    try:
        with connection.cursor() as cursor:
            cursor.execute(SYNTHETIC_TEMPLATE)
            if vector:
                cursor.execute(
                    f'ALTER TABLE clone_src.scratch ADD COLUMN emb "{vector}".vector(3);'
                    f"CREATE INDEX scratch_emb ON clone_src.scratch "
                    f'USING hnsw (emb "{vector}".vector_cosine_ops)'
                )
        schema_clone(source="clone_src", target="clone_dst")
        assert _catalog("clone_dst") == _catalog("clone_src")
        with connection.cursor() as cursor:
            # Each sequence goes on from the template's position, apart from the template's.
            cursor.execute("INSERT INTO clone_dst.parent (code) VALUES ('c') RETURNING id")
            assert cursor.fetchone() == (9,)
            cursor.execute(
                "INSERT INTO clone_dst.child (parent_id) VALUES (9) RETURNING n, id, loose"
            )
            assert cursor.fetchone() == (3, 3, 103)
            cursor.execute("SELECT last_value FROM clone_src.renamed_parent_ids")
            assert cursor.fetchone() == (7,)
            if vector:
                cursor.execute("INSERT INTO clone_dst.scratch VALUES ('x', '{}', '[1,0,0]')")
    finally:
        _drop_schema("clone_dst")
        _drop_schema("clone_src")


def test_a_template_it_cannot_copy_is_cloned_by_clone_schema(committed_db: dict, caplog) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE SCHEMA clone_src; CREATE TABLE clone_src.t (id int PRIMARY KEY);"
                "CREATE VIEW clone_src.v AS SELECT id FROM clone_src.t"
            )
        with caplog.at_level(logging.WARNING, logger="tenants.schema_clone"):
            schema_clone(source="clone_src", target="clone_dst")
        assert "using clone_schema()" in caplog.text
        assert _catalog("clone_dst")["views"] == _catalog("clone_src")["views"] != []
    finally:
        _drop_schema("clone_dst")
        _drop_schema("clone_src")


def test_new_tenants_share_no_rows_and_no_sequences(committed_db: dict) -> None:
    try:
        for slug in ("iso_one", "iso_two"):
            tenant_provision(slug=slug, name=slug)
        with schema_context("iso_one"):
            Agent.objects.create(name="Only in one")
            first, second = Group.objects.create(name="a"), Group.objects.create(name="b")
            content_types = ContentType.objects.count()
        with schema_context("iso_two"):
            assert not Agent.objects.exists()
            assert Group.objects.create(name="a").pk == first.pk
            assert ContentType.objects.count() == content_types > 0
        assert second.pk == first.pk + 1
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence('iso_two.auth_group', 'id')")
            assert cursor.fetchone() == ("iso_two.auth_group_id_seq",)
        with schema_context(TEMPLATE):
            assert not Group.objects.exists()
    finally:
        _drop("iso_one")
        _drop("iso_two")


def _nothing_left(slug: str) -> None:
    tenant_connection().set_schema_to_public()
    assert not Tenant.objects.filter(schema_name=slug).exists()
    assert not schema_exists(slug)
    assert not Domain.objects.filter(domain=f"{slug}.example.test").exists()


def test_a_failure_in_the_copy_leaves_nothing_behind(committed_db: dict, monkeypatch) -> None:
    original = schema_clone_module._create_statements

    def failing(*args: Any, **kwargs: Any) -> list[str]:
        return [*original(*args, **kwargs), "SELECT 1 / 0"]

    monkeypatch.setattr(schema_clone_module, "_create_statements", failing)
    with pytest.raises(DataError):
        tenant_provision(slug="half_made", name="Half", domain="half_made.example.test")
    _nothing_left("half_made")
    # Outside a transaction too, as `Tenant.save()` is used elsewhere.
    with pytest.raises(DataError):
        Tenant(schema_name="half_made", name="Half").save(verbosity=0)
    _nothing_left("half_made")
    monkeypatch.undo()
    # The connection is in a state to go on: the schema it routes to, then a new tenant.
    tenant_provision(slug="half_made", name="Whole", domain="half_made.example.test")
    try:
        with schema_context("half_made"):
            assert not Agent.objects.exists()
    finally:
        _drop("half_made")


def test_a_failure_after_the_copy_leaves_nothing_behind(committed_db: dict, monkeypatch) -> None:
    def failing(**kwargs: Any) -> None:
        raise RuntimeError("key store down")

    monkeypatch.setattr(services, "api_key_issue", failing)
    with pytest.raises(RuntimeError):
        tenant_provision(slug="half_made", name="Half", domain="half_made.example.test")
    _nothing_left("half_made")


def test_provisioning_follows_whether_the_server_has_pgvector(committed_db: dict) -> None:
    """The embedded PostgreSQL has pgvector, the machine's PostgreSQL 15 not: CI runs both."""
    vector = _vector_schema()
    try:
        tenant_provision(slug="vector_check", name="Vectors")
        template, copy = _catalog(TEMPLATE)["indexes"], _catalog("vector_check")["indexes"]
        hnsw = [row for row in copy if row[1] == "knowledge_chunk_embedding_hnsw"]
        assert hnsw == [row for row in template if row[1] == "knowledge_chunk_embedding_hnsw"]
        assert bool(hnsw) == bool(vector)
        with schema_context("vector_check"):
            KnowledgeDocument.objects.create(title="Returns", body="Refunds in five days")
            found = SearchQuery("refunds", config="simple")
            assert KnowledgeDocument.objects.filter(search_vector=found).exists()
            if vector:
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT '[1,2,3]'::\"{vector}\".vector <=> '[1,2,3]'::\"{vector}\".vector"
                    )
                    assert cursor.fetchone() == (0.0,)
    finally:
        _drop("vector_check")
