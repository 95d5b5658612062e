"""The identity relay in Python on Ember (slingshot_microservice), as a user writes it.

    relay_ember.py NAME CONFIG_HOST PREFETCH WORKERS   (WORKERS "loop": process_on_loop)
"""
import sys

from slingshot_microservice import Microservice


def process(request, read_file, write_file, connection):
    yield (request, True)


name, host, prefetch, workers = sys.argv[1:5]
on_loop = workers == "loop"
Microservice(
    name, host, process, prefetch=int(prefetch), workers=0 if on_loop else int(workers), process_on_loop=on_loop
).start()
