"""The operator inbox: `/t/<slug>/inbox/`, or `/inbox/` on a tenant's own domain."""

from django.urls import URLPattern, URLResolver, path

from inbox import views

app_name = "inbox"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.inbox_page, name="home"),
    path("list/", views.inbox_list, name="list"),
    path("availability/", views.availability_set, name="availability"),
    path("notifications/read-all/", views.notifications_read_all, name="notifications-read-all"),
    path(
        "notifications/<uuid:notification_id>/read/",
        views.notification_read,
        name="notification-read",
    ),
    path("c/<uuid:conversation_id>/", views.inbox_page, name="conversation"),
    path("c/<uuid:conversation_id>/pane/", views.conversation_pane, name="pane"),
    path("c/<uuid:conversation_id>/row/", views.conversation_row, name="row"),
    path("c/<uuid:conversation_id>/messages/", views.conversation_messages, name="messages"),
    path("c/<uuid:conversation_id>/reply/", views.conversation_reply, name="reply"),
    path("c/<uuid:conversation_id>/action/", views.conversation_action, name="action"),
]
