from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "automation"
    verbose_name = "Automation"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from automation import jobs  # noqa: F401 - registers the periodic job
        from automation.models import AssessmentFlow
        from automation.selectors import assessment_flows_memo_forget

        post_save.connect(
            assessment_flows_memo_forget, sender=AssessmentFlow, dispatch_uid="memo-flows"
        )
        post_delete.connect(
            assessment_flows_memo_forget, sender=AssessmentFlow, dispatch_uid="memo-d-flows"
        )
