# Credit prices and the low-balance threshold per tenant, and API keys that may add credits
# (written by hand: only these fields).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0003_tenant_extraction_retention'),
    ]

    operations = [
        migrations.AddField(
            model_name='apikey',
            name='can_manage_credits',
            field=models.BooleanField(default=False, help_text='May add credits to its tenant (POST /api/v1/credits/add/). Only the platform admin sets it.'),
        ),
        migrations.AddField(
            model_name='tenant',
            name='credits_per_reply',
            field=models.PositiveIntegerField(blank=True, help_text='Empty: the platform default (HUB_CREDITS_PER_REPLY).', null=True),
        ),
        migrations.AddField(
            model_name='tenant',
            name='credits_per_1k_tokens',
            field=models.PositiveIntegerField(blank=True, help_text='Empty: the platform default (HUB_CREDITS_PER_1K_TOKENS).', null=True),
        ),
        migrations.AddField(
            model_name='tenant',
            name='low_credits_threshold',
            field=models.PositiveIntegerField(blank=True, help_text='Operators are told, and credits.low is sent, when the balance falls below this. Empty: the platform default (HUB_CREDITS_LOW_BALANCE).', null=True),
        ),
    ]
