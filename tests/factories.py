"""factory_boy factories for tenant-schema models. Use them inside a tenant's schema."""

from __future__ import annotations

import factory
from django.contrib.auth.models import User

from agents.models import Agent
from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, ContactIdentity, Conversation, Operator, Participant


class AgentFactory(factory.django.DjangoModelFactory[Agent]):
    class Meta:
        model = Agent

    name = factory.Sequence(lambda n: f"Agent {n}")


class ChannelFactory(factory.django.DjangoModelFactory[Channel]):
    class Meta:
        model = Channel

    kind = ChannelKind.WEBCHAT
    name = factory.Sequence(lambda n: f"Channel {n}")
    config = factory.LazyAttribute(lambda _: {"allowed_origins": ["http://testserver"]})


class ContactFactory(factory.django.DjangoModelFactory[Contact]):
    class Meta:
        model = Contact

    name = factory.Sequence(lambda n: f"Contact {n}")


class ContactIdentityFactory(factory.django.DjangoModelFactory[ContactIdentity]):
    class Meta:
        model = ContactIdentity

    contact = factory.SubFactory(ContactFactory)
    channel_kind = ChannelKind.WEBCHAT
    external_id = factory.Sequence(lambda n: f"visitor-{n}")


class ConversationFactory(factory.django.DjangoModelFactory[Conversation]):
    class Meta:
        model = Conversation
        skip_postgeneration_save = True

    channel = factory.SubFactory(ChannelFactory)
    contact = factory.SubFactory(ContactFactory)

    @factory.post_generation
    def customer(obj: Conversation, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            Participant.objects.create(
                conversation=obj, contact=obj.contact, role=Participant.Role.CUSTOMER
            )


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True


class OperatorFactory(factory.django.DjangoModelFactory[Operator]):
    class Meta:
        model = Operator

    user = factory.SubFactory(UserFactory)
    display_name = factory.Sequence(lambda n: f"Operator {n}")
