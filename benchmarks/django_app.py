"""A minimal Django + DRF project with one view behind ``HasAPIKey`` (run in its own venv).

``python -m django_app setup N`` migrates, creates N API keys and prints the
last one; gunicorn serves ``django_app:application``.
"""
# ruff: noqa: S106
# mypy: ignore-errors

from __future__ import annotations

import os
import sys

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark-only-not-a-secret",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "rest_framework",
        "rest_framework_api_key",
    ],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["BENCH_DJANGO_DB"],
        }
    },
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework_api_key.permissions.HasAPIKey"],
        "UNAUTHENTICATED_USER": None,
    },
    USE_TZ=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402


class Protected(APIView):
    def get(self, request):
        return Response({"id": "5d6f6a3c-0000-4000-8000-000000000000", "name": "item"})


def health(request):
    return HttpResponse("ok")


urlpatterns = [path("protected/", Protected.as_view()), path("health/", health)]
application = get_wsgi_application()


if __name__ == "__main__" and sys.argv[1:2] == ["setup"]:
    from django.core.management import call_command
    from rest_framework_api_key.models import APIKey

    call_command("migrate", verbosity=0)
    key = ""
    for index in range(int(sys.argv[2])):
        _, key = APIKey.objects.create_key(name=f"bench-{index}")
    print(key)
