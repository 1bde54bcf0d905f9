#!/usr/bin/env python3
"""Publish one event to sse-gateway through RabbitMQ, as a backend service would.

    pip install pika
    python3 docs/examples/publish.py --channel orders --type order.created --id order-17 \\
        '{"total": 42}'

The routing key is the channel browsers subscribe to, `message_id` becomes the event's `id:`
(a browser resuming with Last-Event-ID needs it; without it the gateway assigns one) and `type`
its `event:` (without it, browsers see a `message`). The message is persistent and published
with confirms and `mandatory`, so the script reports success only once the broker has it in at
least one gateway's queue. The browser end-to-end test (tests/browser.rs) runs this script.
"""

import argparse
import os
import sys

try:
    import pika
    from pika.exceptions import AMQPError, NackError, UnroutableError
except ImportError:
    sys.exit("this example needs pika: pip install pika")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2f"),
        help="broker URL (default: $AMQP_URL, else guest on localhost)",
    )
    parser.add_argument("--exchange", default="sse", help="the gateway's exchange (default: sse)")
    parser.add_argument("--channel", required=True, help="the channel: the routing key")
    parser.add_argument("--id", help="message_id: the event's id")
    parser.add_argument("--type", help="type: the event's type")
    parser.add_argument("data", help="the event's data, UTF-8 text (JSON or not); - reads stdin")
    args = parser.parse_args()

    data = sys.stdin.read() if args.data == "-" else args.data
    properties = pika.BasicProperties(
        message_id=args.id,
        type=args.type,
        delivery_mode=2,  # persistent: kept in the queue across a broker restart
        content_type="application/json" if data.lstrip()[:1] in ("{", "[") else "text/plain",
    )
    try:
        connection = pika.BlockingConnection(pika.URLParameters(args.url))
    except AMQPError as error:
        print(f"cannot connect to {args.url.split('@')[-1]}: {error!r}", file=sys.stderr)
        return 1
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            args.exchange, args.channel, data.encode("utf-8"), properties, mandatory=True
        )
    except UnroutableError:
        print(
            f"no queue is bound for {args.channel!r} on exchange {args.exchange!r}: "
            "is a gateway consuming it?",
            file=sys.stderr,
        )
        return 1
    except NackError:
        print("the broker refused the message", file=sys.stderr)
        return 1
    except AMQPError as error:
        print(f"publishing failed: {error!r}", file=sys.stderr)
        return 1
    finally:
        if connection.is_open:
            connection.close()
    print(f"published to {args.exchange}/{args.channel}" + (f" as {args.id}" if args.id else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
