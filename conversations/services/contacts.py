"""Contacts and their identities: create, identify, merge, erase."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from conversations.events import contact_payload
from conversations.models import Contact, ContactIdentity, Message, Participant
from hub.db import PreparedQuery
from hub.events import event_publish
from hub.exceptions import ApplicationError, ConflictError

CONTACT_FIELDS = ("name", "email", "phone", "avatar_url", "language", "attributes")


class IdentityTaken(ConflictError):
    default_code = "identity_taken"
    default_detail = "That channel identity already belongs to another contact."


class InvalidMerge(ApplicationError):
    default_code = "invalid_merge"


@transaction.atomic
def contact_create(*, identities: Iterable[tuple[str, str]] = (), **fields: Any) -> Contact:
    """A new contact with its channel identities; an identity already taken is a 409."""
    contact = Contact.objects.create(**{k: v for k, v in fields.items() if k in CONTACT_FIELDS})
    try:
        with transaction.atomic():
            ContactIdentity.objects.bulk_create(
                ContactIdentity(contact=contact, channel_kind=kind, external_id=external_id)
                for kind, external_id in identities
            )
    except IntegrityError:
        raise IdentityTaken() from None
    event_publish(name="contact.created", payload=contact_payload(contact))
    return contact


@transaction.atomic
def contact_update(*, contact: Contact, **fields: Any) -> Contact:
    changed = [key for key in CONTACT_FIELDS if key in fields]
    for key in changed:
        setattr(contact, key, fields[key])
    contact.save(update_fields=[*changed, "updated_at"])
    return contact


# On every inbound message.
_IDENTITY_WITH_CONTACT = PreparedQuery(
    lambda channel_kind, external_id: ContactIdentity.objects.select_related("contact").filter(
        channel_kind=channel_kind, external_id=external_id
    ),
    channel_kind=str,
    external_id=str,
)


def contact_identify(
    *, channel_kind: str, external_id: str, name: str = "", **fields: Any
) -> tuple[Contact, bool]:
    """The contact a channel knows by `external_id`, created on first sight. Safe when two
    webhooks for a new contact race: one creates, the other finds it."""
    identity: ContactIdentity | None = _IDENTITY_WITH_CONTACT.first(
        channel_kind=channel_kind, external_id=external_id
    )
    if identity:
        return identity.contact, False
    try:
        contact = contact_create(identities=[(channel_kind, external_id)], name=name, **fields)
    except IdentityTaken:
        identity = ContactIdentity.objects.select_related("contact").get(
            channel_kind=channel_kind, external_id=external_id
        )
        return identity.contact, False
    return contact, True


@transaction.atomic
def contact_merge(*, target: Contact, source: Contact) -> Contact:
    """Moves the source's identities, conversations, messages and attributes onto the target
    and deletes the source. The target's own values win; blanks are filled from the source."""
    if target.pk == source.pk:
        raise InvalidMerge("A contact cannot be merged into itself.")
    first, second = sorted([target.pk, source.pk])
    list(Contact.objects.select_for_update().filter(pk__in=[first, second]).order_by("pk"))
    ContactIdentity.objects.filter(contact=source).update(contact=target)
    source.conversations.update(contact=target)
    Message.objects.filter(sender_contact=source).update(sender_contact=target)
    for participant in Participant.objects.filter(contact=source):
        kept = Participant.objects.filter(
            conversation_id=participant.conversation_id, contact=target
        )
        if kept.exists():
            kept.update(last_read_seq=Greatest(F("last_read_seq"), participant.last_read_seq))
            participant.delete()
        else:
            participant.contact = target
            participant.save(update_fields=["contact"])
    for key in ("name", "email", "phone", "avatar_url", "language"):
        if not getattr(target, key) and getattr(source, key):
            setattr(target, key, getattr(source, key))
    target.attributes = {**source.attributes, **target.attributes}
    target.save()
    source.delete()
    return target


@transaction.atomic
def contact_erase(*, contact: Contact) -> Contact:
    """Removes a contact's personal data and every message of its conversations, keeping the
    rows (so counts and seqs stay) with their content emptied. The messages, files and leads go
    through the retention machinery, which records the erasure; a conversation under legal
    hold refuses it (409 `legal_hold`) before anything changes."""
    from retention.services import contact_data_erase

    contact_data_erase(contact=contact)
    contact.identities.all().delete()
    for key in ("name", "email", "phone", "avatar_url", "language"):
        setattr(contact, key, "")
    contact.attributes = {}
    contact.erased_at = timezone.now()
    contact.save()
    return contact


class ContactInUse(ConflictError):
    default_code = "contact_in_use"
    default_detail = (
        "This contact has conversations, which keep it. To remove its personal data, erase it "
        "instead (POST /api/v1/contacts/{id}/erase/)."
    )


@transaction.atomic
def contact_identities_replace(
    *, contact: Contact, identities: Iterable[tuple[str, str]]
) -> Contact:
    """Makes `identities` the contact's whole set: those missing are removed, new ones added
    (409 if another contact has one), those kept keep their rows."""
    wanted = set(identities)
    current = {(i.channel_kind, i.external_id): i.pk for i in contact.identities.all()}
    ContactIdentity.objects.filter(
        pk__in=[pk for key, pk in current.items() if key not in wanted]
    ).delete()
    try:
        with transaction.atomic():
            ContactIdentity.objects.bulk_create(
                ContactIdentity(contact=contact, channel_kind=kind, external_id=external_id)
                for kind, external_id in sorted(wanted - set(current))
            )
    except IntegrityError:
        raise IdentityTaken() from None
    return contact


@transaction.atomic
def contact_edit(
    *, contact: Contact, identities: Iterable[tuple[str, str]] | None = None, **fields: Any
) -> Contact:
    """`contact_update`, and the identities replaced when given, in one transaction: a taken
    identity (409) leaves the contact as it was."""
    contact_update(contact=contact, **fields)
    if identities is not None:
        contact_identities_replace(contact=contact, identities=identities)
    return contact


@transaction.atomic
def contact_delete(*, contact: Contact) -> None:
    """Deletes a contact with no conversation; one with conversations is a 409 pointing to
    erasure, which keeps the conversations' counts and seqs."""
    from conversations.selectors import contact_has_conversations

    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if contact_has_conversations(contact=locked):
        raise ContactInUse()
    locked.delete()
