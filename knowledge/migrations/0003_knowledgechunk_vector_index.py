"""pgvector for knowledge search, where the server has it.

The extension is database-wide, so it goes to `public` (on every tenant's search path) the first
time any schema migrates; each schema then gets an HNSW index over its chunks' embeddings cast to
`vector`. A server without pgvector (or a role that may not create it) keeps every chunk and its
embedding as a float array and searches by full text: this migration logs why and succeeds.
"""

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger("knowledge.migrations")

# HUB_EMBEDDING_DIMENSIONS' default. Embeddings of another size are still searched, without it.
DIMENSIONS = 1536
INDEX = "knowledge_chunk_embedding_hnsw"


def _vector_schema(cursor):
    cursor.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    )
    row = cursor.fetchone()
    return row[0] if row else None


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        schema = _vector_schema(cursor)
        if schema is None:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            if cursor.fetchone() is None:
                logger.warning(
                    "pgvector is not available on this PostgreSQL server: knowledge search "
                    "will use full text only"
                )
                return
            try:
                with transaction.atomic(using=connection.alias):
                    cursor.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
            except DatabaseError as error:
                logger.warning(
                    "could not create the pgvector extension (it needs a superuser): knowledge "
                    "search will use full text only",
                    extra={"error": type(error).__name__},
                )
                return
            schema = _vector_schema(cursor)
        cursor.execute(
            f'CREATE INDEX IF NOT EXISTS {INDEX} ON knowledge_knowledgechunk USING hnsw '
            f'((embedding::"{schema}".vector({DIMENSIONS})) "{schema}".vector_cosine_ops) '
            f"WHERE cardinality(embedding) = {DIMENSIONS}"
        )


def backwards(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ("knowledge", "0002_knowledgechunk"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
