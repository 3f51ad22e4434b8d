from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Tokens, the access policy and admin-maintained roles."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A broken policy must stop start-up, not fail the first request.
        from accounts import checks  # noqa: F401 - registers the system checks
        from accounts.policy import get_policy

        get_policy()
