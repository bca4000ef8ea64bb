"""`contacts/`, `conversations/` and their messages, participants and attachments (CONTRACT §4).

Thin views: input serializers check shapes, selectors read (a fixed number of queries per list,
whatever its page size), services write. Every lookup runs in the API key's tenant schema, so
another tenant's id answers exactly as an unknown one does.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from operator import attrgetter
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import selectors
from conversations.api.serializers import (
    AttachmentOutputSerializer,
    AttachmentUploadInputSerializer,
    ContactInputSerializer,
    ContactListFilterSerializer,
    ContactMergeInputSerializer,
    ContactOutputSerializer,
    ConversationAssignInputSerializer,
    ConversationFilterSerializer,
    ConversationMuteInputSerializer,
    ConversationOutputSerializer,
    ConversationReadInputSerializer,
    ConversationStatusInputSerializer,
    ConversationUpdateInputSerializer,
    EmptyInputSerializer,
    MessageCreateInputSerializer,
    MessageListFilterSerializer,
    MessageOutputSerializer,
    ParticipantInputSerializer,
    ParticipantOutputSerializer,
    ReaderStateSerializer,
    error_responses,
)
from conversations.models import Contact, Conversation, Message, Participant
from conversations.selectors import Reader
from conversations.services import attachments as attachment_services
from conversations.services import contacts as contact_services
from conversations.services import conversations as conversation_services
from conversations.services import messages as message_services
from hub.pagination import CursorPagination, KeysetCursorPagination

# Multipart framing around the file itself; a body larger than the limit plus this is refused
# from its Content-Length, before a byte of it is read.
MULTIPART_OVERHEAD = 64 * 1024


class ActivityCursorPagination(KeysetCursorPagination):
    """Newest activity first, the id breaking ties (`conversation_page_for_api`)."""

    key_types = (datetime, uuid.UUID)


class SeqCursorPagination(KeysetCursorPagination):
    """Oldest first, in the conversation's own order (`message_page`)."""

    key_types = (int,)


class JoinedCursorPagination(CursorPagination):
    ordering = ("joined_at", "id")  # type: ignore[assignment]


def _valid(serializer_class: type[Any], data: Any, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _content_length(request: Request) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _reader(request: Request) -> Reader:
    # An integrator's read position is its API key's.
    return Reader(api_key_id=request.auth.pk)


# --- Contacts -----------------------------------------------------------------------------


def _contact_output(contact_id: uuid.UUID) -> dict[str, Any]:
    # Fetched again so the identities shown are the stored ones.
    return dict(ContactOutputSerializer(selectors.contact_get(contact_id=contact_id)).data)


class ContactListView(GenericAPIView[Contact]):
    serializer_class = ContactOutputSerializer

    @extend_schema(
        summary="List or search contacts",
        parameters=[ContactListFilterSerializer],
        responses={200: ContactOutputSerializer(many=True), **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        filters = _valid(ContactListFilterSerializer, request.query_params)
        page = self.paginate_queryset(selectors.contact_list(q=filters.get("q") or None))
        return self.get_paginated_response(ContactOutputSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a contact",
        description="An identity (channel kind + external id) already taken is 409 "
        "`identity_taken`.",
        request=ContactInputSerializer,
        responses={201: ContactOutputSerializer, **error_responses(400, 409)},
    )
    def post(self, request: Request) -> Response:
        fields = _valid(ContactInputSerializer, request.data)
        contact = contact_services.contact_create(identities=fields.pop("identities", ()), **fields)
        return Response(_contact_output(contact.pk), status=status.HTTP_201_CREATED)


class ContactDetailView(APIView):
    @extend_schema(
        summary="Get a contact",
        responses={200: ContactOutputSerializer, **error_responses(404)},
    )
    def get(self, request: Request, contact_id: uuid.UUID) -> Response:
        return Response(_contact_output(contact_id))

    @extend_schema(
        summary="Change a contact",
        description="`identities`, when given, replaces the contact's whole set.",
        request=ContactInputSerializer,
        responses={200: ContactOutputSerializer, **error_responses(400, 404, 409)},
    )
    def patch(self, request: Request, contact_id: uuid.UUID) -> Response:
        contact = selectors.contact_get(contact_id=contact_id)
        fields = _valid(ContactInputSerializer, request.data)
        contact_services.contact_edit(contact=contact, **fields)
        return Response(_contact_output(contact.pk))

    @extend_schema(
        summary="Delete a contact",
        description="Only a contact without conversations; otherwise 409 `contact_in_use` "
        "(erase it instead).",
        responses={204: None, **error_responses(404, 409)},
    )
    def delete(self, request: Request, contact_id: uuid.UUID) -> Response:
        contact_services.contact_delete(contact=selectors.contact_get(contact_id=contact_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactMergeView(APIView):
    @extend_schema(
        summary="Merge another contact into this one",
        description="Moves the source's identities, conversations and messages here, fills "
        "this contact's blanks from it, and deletes it. Merging a contact into itself is 400 "
        "`invalid_merge`.",
        request=ContactMergeInputSerializer,
        responses={200: ContactOutputSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request, contact_id: uuid.UUID) -> Response:
        target = selectors.contact_get(contact_id=contact_id)
        source_id = _valid(ContactMergeInputSerializer, request.data)["source"]
        source = selectors.contact_get(contact_id=source_id)
        contact_services.contact_merge(target=target, source=source)
        return Response(_contact_output(target.pk))


class ContactEraseView(APIView):
    @extend_schema(
        summary="Erase a contact's personal data",
        description="Removes its name, email, phone, identities and attributes, and empties "
        "every message of its conversations (and deletes their files). The rows stay, so "
        "counts and seqs do.",
        request=EmptyInputSerializer,
        responses={200: ContactOutputSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request, contact_id: uuid.UUID) -> Response:
        contact = selectors.contact_get(contact_id=contact_id)
        _valid(EmptyInputSerializer, request.data)
        contact_services.contact_erase(contact=contact)
        return Response(_contact_output(contact.pk))


# --- Conversations ------------------------------------------------------------------------


def _conversation_output(request: Request, conversation_id: uuid.UUID) -> dict[str, Any]:
    conversation = selectors.conversation_get_for_reader(
        conversation_id=conversation_id, reader=_reader(request)
    )
    return dict(ConversationOutputSerializer(conversation).data)


def _reader_state(conversation: Conversation, participant: Participant) -> dict[str, Any]:
    unread = selectors.unread_count_get(
        conversation=conversation, last_read_seq=participant.last_read_seq
    )
    return dict(
        ReaderStateSerializer(
            {
                "conversation": conversation.pk,
                "last_read_seq": participant.last_read_seq,
                "muted": participant.muted,
                "unread_count": unread,
            }
        ).data
    )


class ConversationListView(GenericAPIView[Conversation]):
    serializer_class = ConversationOutputSerializer
    pagination_class = ActivityCursorPagination

    @extend_schema(
        summary="List conversations",
        description="Newest activity first. Each has its `last_message` and `unread_count`: "
        "the inbound messages after your API key's read position.",
        parameters=[ConversationFilterSerializer],
        responses={200: ConversationOutputSerializer(many=True), **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        filters = _valid(ConversationFilterSerializer, request.query_params)
        assignee = filters.get("assignee")
        reader = _reader(request)

        def read(after: tuple[Any, ...] | None, size: int) -> list[Conversation]:
            return selectors.conversation_page_for_api(
                reader=reader,
                after=after,
                size=size,
                status=filters.get("status"),
                channel_id=filters.get("channel"),
                assignee_id=None if assignee in (None, "none") else assignee,
                unassigned=assignee == "none",
                label=filters.get("label"),
                q=filters.get("q"),
                updated_after=filters.get("updated_after"),
            )

        paginator = ActivityCursorPagination()
        page = paginator.paginate_rows(
            request,
            read=read,
            key=attrgetter("activity_at", "pk"),
        )
        return paginator.get_paginated_response(ConversationOutputSerializer(page, many=True).data)


class ConversationDetailView(APIView):
    @extend_schema(
        summary="Get a conversation",
        responses={200: ConversationOutputSerializer, **error_responses(404)},
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        return Response(_conversation_output(request, conversation_id))

    @extend_schema(
        summary="Change a conversation",
        description="Any of status (with `snoozed_until` to snooze), priority, labels, "
        "assignee (an operator id or null) and `ai_active`.",
        request=ConversationUpdateInputSerializer,
        responses={200: ConversationOutputSerializer, **error_responses(400, 404)},
    )
    def patch(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        fields = _valid(ConversationUpdateInputSerializer, request.data)
        conversation_services.conversation_update(conversation=conversation, **fields)
        return Response(_conversation_output(request, conversation.pk))


class ConversationReadView(APIView):
    @extend_schema(
        summary="Mark a conversation read",
        description="Moves your API key's read position to `seq` (default: the newest "
        "message); it never moves back.",
        request=ConversationReadInputSerializer,
        responses={200: ReaderStateSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        fields = _valid(ConversationReadInputSerializer, request.data)
        participant = conversation_services.participant_mark_read(
            conversation=conversation, seq=fields.get("seq"), api_key_id=request.auth.pk
        )
        return Response(_reader_state(conversation, participant))


class ConversationMuteView(APIView):
    @extend_schema(
        summary="Mute or unmute a conversation for your API key",
        request=ConversationMuteInputSerializer,
        responses={200: ReaderStateSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        fields = _valid(ConversationMuteInputSerializer, request.data)
        participant = conversation_services.participant_set_muted(
            conversation=conversation, muted=fields["muted"], api_key_id=request.auth.pk
        )
        return Response(_reader_state(conversation, participant))


class ConversationAssignView(APIView):
    @extend_schema(
        summary="Assign a conversation to an operator, or unassign it",
        request=ConversationAssignInputSerializer,
        responses={200: ConversationOutputSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        fields = _valid(ConversationAssignInputSerializer, request.data)
        conversation_services.conversation_assign(
            conversation=conversation, operator=fields["operator"]
        )
        return Response(_conversation_output(request, conversation.pk))


class ConversationStatusView(APIView):
    @extend_schema(
        summary="Change a conversation's status",
        description="`snoozed` needs `snoozed_until` in the future; other statuses clear it.",
        request=ConversationStatusInputSerializer,
        responses={200: ConversationOutputSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        fields = _valid(ConversationStatusInputSerializer, request.data)
        conversation_services.conversation_set_status(
            conversation=conversation,
            status=fields["status"],
            snoozed_until=fields.get("snoozed_until"),
        )
        return Response(_conversation_output(request, conversation.pk))


class ParticipantListView(GenericAPIView[Participant]):
    serializer_class = ParticipantOutputSerializer
    pagination_class = JoinedCursorPagination

    @extend_schema(
        summary="List a conversation's participants",
        description="Its contacts and operators, in the order they joined.",
        responses={200: ParticipantOutputSerializer(many=True), **error_responses(404)},
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        page = self.paginate_queryset(selectors.participant_list(conversation=conversation))
        return self.get_paginated_response(ParticipantOutputSerializer(page, many=True).data)

    @extend_schema(
        summary="Add a participant",
        description="A contact or an operator. A group holds at most the tenant's limit: 409 "
        "`group_full` past it. Adding someone already in answers 200 with their participant.",
        request=ParticipantInputSerializer,
        responses={
            201: ParticipantOutputSerializer,
            200: OpenApiResponse(ParticipantOutputSerializer, description="Already in."),
            **error_responses(400, 404, 409),
        },
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        fields = _valid(ParticipantInputSerializer, request.data)
        existing = selectors.participant_find(
            conversation=conversation,
            contact=fields.get("contact"),
            operator=fields.get("operator"),
        )
        participant = existing or conversation_services.participant_add(
            conversation=conversation,
            role=fields["role"],
            contact=fields.get("contact"),
            operator=fields.get("operator"),
        )
        return Response(
            ParticipantOutputSerializer(participant).data,
            status=status.HTTP_200_OK if existing else status.HTTP_201_CREATED,
        )


# --- Messages and attachments -------------------------------------------------------------


class MessageListView(GenericAPIView[Message]):
    serializer_class = MessageOutputSerializer
    pagination_class = SeqCursorPagination

    @extend_schema(
        summary="List a conversation's messages",
        description="In seq order, oldest first; `after_seq` resumes after the last one you have.",
        parameters=[MessageListFilterSerializer],
        responses={200: MessageOutputSerializer(many=True), **error_responses(400, 404)},
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id, related=())
        filters = _valid(MessageListFilterSerializer, request.query_params)
        after_seq = filters.get("after_seq")

        def read(after: tuple[Any, ...] | None, size: int) -> list[Message]:
            # Catching up from `after_seq` and paging meet: after the later of the two.
            starts = [seq for seq in (after_seq, after[0] if after else None) if seq is not None]
            return selectors.message_page(
                conversation_id=conversation.pk, after_seq=max(starts, default=None), size=size
            )

        paginator = SeqCursorPagination()
        page = paginator.paginate_rows(request, read=read, key=lambda message: (message.seq,))
        return paginator.get_paginated_response(MessageOutputSerializer(page, many=True).data)

    @extend_schema(
        summary="Send a message",
        description="An outbound message (sender_type `operator`), delivered through the "
        "conversation's channel. A repeated `client_id` returns the first message with 200 "
        "instead of 201 and sends nothing again. To send a file, upload it to "
        "`attachments/` first and name its id in the content.",
        request=MessageCreateInputSerializer,
        responses={
            201: MessageOutputSerializer,
            200: OpenApiResponse(
                MessageOutputSerializer, description="A repeated client_id: the first message."
            ),
            **error_responses(400, 404),
        },
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        # The channel is all that sending reads of the conversation.
        conversation = selectors.conversation_get(
            conversation_id=conversation_id, related=("channel",)
        )
        fields = _valid(MessageCreateInputSerializer, request.data)
        message, created = attachment_services.message_send_with_attachment(
            conversation=conversation,
            content=fields["content"],
            sender_type=Message.SenderType.OPERATOR,
            sender_operator=fields.get("operator"),
            client_id=fields.get("client_id", ""),
            is_private=fields["is_private"],
        )
        if created:
            # The row just written, as written, with its file.
            selectors.messages_attachments_load([message])
        else:
            message = selectors.message_get_in_conversation(
                conversation=conversation, message_id=message.pk
            )
        return Response(
            MessageOutputSerializer(message).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class MessageDetailView(APIView):
    @extend_schema(
        summary="Get a message",
        responses={200: MessageOutputSerializer, **error_responses(404)},
    )
    def get(self, request: Request, conversation_id: uuid.UUID, message_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        message = selectors.message_get_in_conversation(
            conversation=conversation, message_id=message_id
        )
        return Response(MessageOutputSerializer(message).data)

    @extend_schema(
        summary="Delete a message",
        description="A soft delete: the message keeps its place (seq) and shows "
        "`deleted_at` with `content` null.",
        responses={204: None, **error_responses(404)},
    )
    def delete(
        self, request: Request, conversation_id: uuid.UUID, message_id: uuid.UUID
    ) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        message = selectors.message_get_in_conversation(
            conversation=conversation, message_id=message_id
        )
        message_services.message_soft_delete(message=message)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AttachmentUploadView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Upload a file into a conversation",
        description="multipart/form-data with one `file`. Then send a message whose content "
        'names it: `{"type": "image", "attachment_id": "<id>"}` (or document, audio, video). '
        "Over the size limit (10 MiB unless the operator set another) the answer is 413 "
        "`payload_too_large`.",
        request={"multipart/form-data": AttachmentUploadInputSerializer},
        responses={201: AttachmentOutputSerializer, **error_responses(400, 404, 413, 415)},
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = selectors.conversation_get(conversation_id=conversation_id)
        declared = _content_length(request)
        if declared > attachment_services.attachment_max_bytes() + MULTIPART_OVERHEAD:
            raise attachment_services.attachment_too_large(size=declared)
        upload = _valid(AttachmentUploadInputSerializer, request.data)["file"]
        attachment = attachment_services.attachment_create(
            conversation=conversation,
            file=upload,
            filename=upload.name or "",
            content_type=getattr(upload, "content_type", "") or "",
        )
        return Response(AttachmentOutputSerializer(attachment).data, status=status.HTTP_201_CREATED)
