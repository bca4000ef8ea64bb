# Separate from 0002: PostgreSQL refuses to alter a table with row updates pending in the same
# transaction.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0002_attachment_conversation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="attachment",
            name="conversation",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attachments",
                to="conversations.conversation",
            ),
        ),
        migrations.AlterField(
            model_name="attachment",
            name="message",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attachments",
                to="conversations.message",
            ),
        ),
    ]
