#!/usr/bin/env python3
"""Drives the `upper` example: uploads input objects to S3, publishes their
ids as requests, and prints where each result went and what was written.

Reads the services' settings from the environment (the env file of
scripts/services.sh): RABBITMQ_*, S3_*. Clients: pika and boto3 (Debian).
"""
import os
import sys
import time

import boto3
import pika
from botocore.config import Config

TEXTS = {
    1: "short",
    2: "a somewhat longer line of text",
    3: "hello, queue",
    4: "ember relays requests without copying their payloads",
}


def main():
    s3 = boto3.client(
        "s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name=os.environ.get("S3_REGION", "garage"),
        aws_access_key_id=os.environ["S3_ACCESS_KEY"], aws_secret_access_key=os.environ["S3_SECRET_KEY"],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
    for rid, text in TEXTS.items():
        s3.put_object(Bucket="ember-in", Key=str(rid), Body=text.encode())

    params = pika.ConnectionParameters(
        host=os.environ["RABBITMQ_HOST"], port=int(os.environ["RABBITMQ_PORT"]),
        credentials=pika.PlainCredentials(os.environ["RABBITMQ_USER"], os.environ["RABBITMQ_PASSWORD"]))
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    for q in ("upper-in", "upper-long", "upper-short"):
        ch.queue_declare(queue=q)
    for rid in TEXTS:
        ch.basic_publish(exchange="", routing_key="upper-in", body=str(rid).encode())
    print(f"published {len(TEXTS)} requests to upper-in")

    seen = {}
    deadline = time.monotonic() + 60
    while len(seen) < len(TEXTS) and time.monotonic() < deadline:
        for q in ("upper-long", "upper-short"):
            method, _, body = ch.basic_get(queue=q, auto_ack=True)
            if method:
                seen[int(body)] = q
        time.sleep(0.05)
    conn.close()

    for rid in sorted(TEXTS):
        where = seen.get(rid, "(nothing arrived)")
        out = s3.get_object(Bucket="ember-out", Key=str(rid))["Body"].read().decode() if rid in seen else ""
        print(f"request {rid}: {TEXTS[rid]!r:58} -> {where:12} out/{rid} = {out!r}")
    return 0 if len(seen) == len(TEXTS) else 1


if __name__ == "__main__":
    sys.exit(main())
