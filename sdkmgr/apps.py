from django.apps import AppConfig


class SdkmgrConfig(AppConfig):
    name = "sdkmgr"
    verbose_name = "AuthSec SDK compatibility"

    def ready(self) -> None:
        from sdkmgr import signals

        signals.connect(self)
