"""The identity relay in Python with pika (Debian's python3-pika), the rival a
Python user would pick: prefetch N, per delivery parse the u64, publish it to the
out queue (default exchange), ack. No publisher confirms (pika's BlockingConnection
would wait a round trip per publish).

    relay_pika.py HOST PORT USER PASSWORD IN_QUEUE OUT_QUEUE PREFETCH
"""
import sys

import pika

host, port, user, password, queue_in, queue_out, prefetch = sys.argv[1:8]
connection = pika.BlockingConnection(
    pika.ConnectionParameters(host, int(port), credentials=pika.PlainCredentials(user, password))
)
channel = connection.channel()
channel.basic_qos(prefetch_count=int(prefetch))


def on_message(ch, method, properties, body):
    request = int(body)
    ch.basic_publish("", queue_out, str(request).encode())
    ch.basic_ack(method.delivery_tag)


channel.basic_consume(queue_in, on_message)
channel.start_consuming()  # until the driver's SIGTERM
