# Lead extraction and data retention settings of a tenant (written by hand: only these fields).

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0002_tenant_max_group_participants'),
    ]

    operations = [
        migrations.AddField(
            model_name='tenant',
            name='extraction_enabled',
            field=models.BooleanField(default=True, help_text='Extract leads from conversations once they go quiet.'),
        ),
        migrations.AddField(
            model_name='tenant',
            name='extraction_idle_minutes',
            field=models.PositiveSmallIntegerField(blank=True, help_text='Minutes without a message before a conversation is extracted (5-15). Empty: the platform default (HUB_EXTRACTION_IDLE_MINUTES).', null=True, validators=[django.core.validators.MinValueValidator(5), django.core.validators.MaxValueValidator(15)]),
        ),
        migrations.AddField(
            model_name='tenant',
            name='extraction_updates_contact',
            field=models.BooleanField(default=False, help_text="Write the fields a customer confirmed into their contact's attributes."),
        ),
        migrations.AddField(
            model_name='tenant',
            name='retention_days',
            field=models.PositiveIntegerField(default=90, help_text='Messages older than this are deleted (after a 7-day audit window).', validators=[django.core.validators.MinValueValidator(1)]),
        ),
        migrations.AddField(
            model_name='tenant',
            name='message_encryption',
            field=models.BooleanField(default=False, help_text='Store message bodies encrypted (HUB_FIELD_KEYS). Full-text search of messages then finds nothing.'),
        ),
    ]
