"""An SMTP server on loopback for the tests: every message it accepts is written to a file in
its directory (one per recipient, `<time>-<recipient>.eml`), and a recipient whose address
starts with `refuse-once` is refused with a temporary failure (451) the first time, so that a
test can see a send retried. Started by scripts/lib.sh (faas_start_smtp_sink)."""

import argparse
import os
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.refused = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refuse-once") and address not in self.refused:
            self.refused.add(address)
            return "451 4.3.0 not now, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            name = f"{time.time_ns()}-{rcpt}.eml"
            tmp = os.path.join(self.directory, "." + name)
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, os.path.join(self.directory, name))
        return "250 Message accepted"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
