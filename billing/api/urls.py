from django.urls import path

from billing.api.views import CreditAddView, CreditBalanceView, CreditLedgerView

urlpatterns = [
    path("credits/", CreditBalanceView.as_view(), name="credit-balance"),
    path("credits/add/", CreditAddView.as_view(), name="credit-add"),
    path("credits/ledger/", CreditLedgerView.as_view(), name="credit-ledger"),
]
