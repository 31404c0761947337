"""WSGI entry point: ``gunicorn -c flight_delay/gunicorn_conf.py flight_delay.wsgi:app``."""

from flight_delay import create_app

app = create_app()
