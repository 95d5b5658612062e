"""The identity relay in Python on Ember (slingshot_microservice), as a user writes it.

    relay_ember.py NAME CONFIG_HOST PREFETCH WORKERS
"""
import sys

from slingshot_microservice import Microservice


def process(request, read_file, write_file, connection):
    yield (request, True)


name, host, prefetch, workers = sys.argv[1:5]
Microservice(name, host, process, prefetch=int(prefetch), workers=int(workers)).start()
