from django.urls import path

from conversations.api import views

conversation = "conversations/<uuid:conversation_id>"

urlpatterns = [
    path("contacts/", views.ContactListView.as_view(), name="contact-list"),
    path("contacts/<uuid:contact_id>/", views.ContactDetailView.as_view(), name="contact-detail"),
    path(
        "contacts/<uuid:contact_id>/merge/", views.ContactMergeView.as_view(), name="contact-merge"
    ),
    path(
        "contacts/<uuid:contact_id>/erase/", views.ContactEraseView.as_view(), name="contact-erase"
    ),
    path("conversations/", views.ConversationListView.as_view(), name="conversation-list"),
    path(f"{conversation}/", views.ConversationDetailView.as_view(), name="conversation-detail"),
    path(f"{conversation}/read/", views.ConversationReadView.as_view(), name="conversation-read"),
    path(f"{conversation}/mute/", views.ConversationMuteView.as_view(), name="conversation-mute"),
    path(
        f"{conversation}/assign/",
        views.ConversationAssignView.as_view(),
        name="conversation-assign",
    ),
    path(
        f"{conversation}/status/",
        views.ConversationStatusView.as_view(),
        name="conversation-status",
    ),
    path(
        f"{conversation}/participants/",
        views.ParticipantListView.as_view(),
        name="conversation-participants",
    ),
    path(f"{conversation}/messages/", views.MessageListView.as_view(), name="message-list"),
    path(
        f"{conversation}/messages/<uuid:message_id>/",
        views.MessageDetailView.as_view(),
        name="message-detail",
    ),
    path(
        f"{conversation}/attachments/",
        views.AttachmentUploadView.as_view(),
        name="attachment-upload",
    ),
]
