"""Channel credentials are ciphertext in the database and survive a key rotation."""

from __future__ import annotations

import io

from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from channels_app.models import Channel, ChannelKind


def _raw_config(channel_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT config FROM channels_app_channel WHERE id = %s", [channel_id])
        return cursor.fetchone()[0]


def test_config_is_stored_encrypted_and_read_back(tenant_a) -> None:
    with tenant_a.schema():
        channel = Channel.objects.create(
            kind=ChannelKind.TELEGRAM, name="Bot", config={"bot_token": "123:SECRET-TOKEN"}
        )
        raw = _raw_config(channel.pk)
        assert "SECRET-TOKEN" not in raw
        assert "bot_token" not in raw
        assert Channel.objects.get(pk=channel.pk).config == {"bot_token": "123:SECRET-TOKEN"}


def test_rotation_reads_old_rows_and_writes_with_the_new_key(tenant_a, settings) -> None:
    old_key = settings.HUB_FIELD_KEYS[0]
    with tenant_a.schema():
        channel = Channel.objects.create(
            kind=ChannelKind.SLACK, name="Slack", config={"bot_token": "xoxb-1"}
        )
        old_ciphertext = _raw_config(channel.pk)
        new_key = Fernet.generate_key().decode()
        settings.HUB_FIELD_KEYS = [new_key, old_key]
        assert Channel.objects.get(pk=channel.pk).config == {"bot_token": "xoxb-1"}
        channel.save()
        assert _raw_config(channel.pk) != old_ciphertext
        settings.HUB_FIELD_KEYS = [new_key]
        assert Channel.objects.get(pk=channel.pk).config == {"bot_token": "xoxb-1"}


def test_channel_tokens_are_unguessable_and_unique(tenant_a) -> None:
    with tenant_a.schema():
        tokens = {
            Channel.objects.create(kind=ChannelKind.API, name=f"c{i}").channel_token
            for i in range(5)
        }
    assert len(tokens) == 5
    assert all(len(token) >= 16 for token in tokens)


def test_rotate_field_keys_reencrypts_every_tenant(tenant_a, tenant_b, settings) -> None:
    old_key = settings.HUB_FIELD_KEYS[0]
    channels = {}
    for info in (tenant_a, tenant_b):
        with info.schema():
            channels[info.slug] = Channel.objects.create(
                kind=ChannelKind.SLACK, name="Slack", config={"signing_secret": info.slug}
            ).pk
    new_key = Fernet.generate_key().decode()
    settings.HUB_FIELD_KEYS = [new_key, old_key]
    call_command("rotate_field_keys", stdout=io.StringIO())
    settings.HUB_FIELD_KEYS = [new_key]
    for info in (tenant_a, tenant_b):
        with info.schema():
            assert Channel.objects.get(pk=channels[info.slug]).config == {
                "signing_secret": info.slug
            }
