"""A tenant's web chat pages, at the tenant's root (`/t/<slug>/…` or its own domain)."""

from django.urls import URLPattern, URLResolver, path

from webchat import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("chat-demo/", views.chat_demo, name="webchat-demo"),
]
