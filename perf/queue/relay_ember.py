"""The identity relay in Python on Ember (slingshot_microservice), as a user writes it.

    relay_ember.py [--no-confirms] NAME CONFIG_HOST PREFETCH WORKERS
        (WORKERS "loop": process_on_loop; --no-confirms: publisher_confirms=False)
"""
import sys

from slingshot_microservice import Microservice


def process(request, read_file, write_file, connection):
    yield (request, True)


args = [a for a in sys.argv[1:] if a != "--no-confirms"]
name, host, prefetch, workers = args[:4]
on_loop = workers == "loop"
Microservice(
    name, host, process, prefetch=int(prefetch), workers=0 if on_loop else int(workers),
    process_on_loop=on_loop, publisher_confirms="--no-confirms" not in sys.argv[1:]
).start()
