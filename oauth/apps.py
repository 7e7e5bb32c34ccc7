from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "oauth"
    label = "oauth"
    verbose_name = "OAuth provider"

    def ready(self) -> None:
        from oauth import issuer

        issuer.install()
