import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resourcemonitor.settings")
application = get_wsgi_application()

# Each serving process reports its heartbeat (and pings the dead-man's switch) from a
# thread; see resourcemonitor.monitoring.selfmon. Not started by tests or commands.
from resourcemonitor.monitoring.selfmon import start_web_heartbeat  # noqa: E402

start_web_heartbeat()
