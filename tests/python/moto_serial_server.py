"""moto's server with requests handled one at a time.

`moto_server` runs werkzeug with `threaded=True`, and moto's DynamoDB backend
does not lock an item across the condition check and the write of an
UpdateItem, so two concurrent conditional updates can both pass. DynamoDB
itself serialises writes to an item. Serving requests one by one restores
that guarantee, so the quota concurrency tests check the gateway's
conditional expressions, not moto's threading.

Usage: python moto_serial_server.py <host> <port>
"""

import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
