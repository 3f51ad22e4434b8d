from django.apps import AppConfig


class WebConfig(AppConfig):
    """The HTML pages of upstream fatbuildrweb (compat §1.6), beside the JSON API."""

    name = "web"
    verbose_name = "Web pages"
