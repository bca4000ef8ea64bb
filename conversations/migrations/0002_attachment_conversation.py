# An attachment is uploaded before the message that links it: it belongs to its conversation,
# and its message is set once linked.

import django.db.models.deletion
from django.db import migrations, models


def fill_conversation(apps, schema_editor):
    Attachment = apps.get_model("conversations", "Attachment")
    for attachment in Attachment.objects.select_related("message").iterator():
        attachment.conversation_id = attachment.message.conversation_id
        attachment.save(update_fields=["conversation"])


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="attachment",
            name="conversation",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attachments",
                to="conversations.conversation",
            ),
        ),
        migrations.RunPython(fill_conversation, migrations.RunPython.noop),
    ]
