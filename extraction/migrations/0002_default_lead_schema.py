# The default lead schema, created in every tenant schema (and in the template new tenants are
# cloned from, so they start with it too).

from django.db import migrations

DEFAULT_FIELDS = [
    ("name", "string", "The customer's full name.", False, []),
    ("email", "email", "The customer's email address.", False, []),
    ("phone", "phone", "The customer's phone number.", False, []),
    ("company", "string", "The company or organisation the customer represents.", False, []),
    ("budget", "number", "The budget the customer mentioned, as a number without currency.", False, []),
    (
        "intent",
        "enum",
        "What the customer wants.",
        False,
        ["purchase", "quote", "demo", "information", "support", "other"],
    ),
    ("timeline", "string", "When the customer wants to buy or start, in their words.", False, []),
    ("notes", "string", "Anything else a salesperson should know, in one or two sentences.", False, []),
]


def create_default_fields(apps, schema_editor):
    ExtractionField = apps.get_model("extraction", "ExtractionField")
    if ExtractionField.objects.exists():
        return
    ExtractionField.objects.bulk_create(
        ExtractionField(
            name=name,
            type=kind,
            description=description,
            required=required,
            enum_values=values,
            position=position,
        )
        for position, (name, kind, description, required, values) in enumerate(DEFAULT_FIELDS)
    )


class Migration(migrations.Migration):

    dependencies = [
        ('extraction', '0001_initial'),
    ]

    operations = [
        migrations.RunPython(create_default_fields, migrations.RunPython.noop),
    ]
