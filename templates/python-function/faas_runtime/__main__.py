"""Entry point: ``python3 -m faas_runtime``. Configured by environment variables:

PORT                   the port to listen on (default 8080)
HOST                   the address to listen on (default 0.0.0.0)
FAAS_FUNCTIONS_MODULE  the module whose functions are served (default app.functions)
FAAS_MAX_BODY          the largest request body in bytes (default 1048576)
LOG_LEVEL              debug, info, warning or error (default info)
"""

import asyncio
import os
import sys

from .server import serve


def main():
    try:
        asyncio.run(
            serve(
                module_name=os.environ.get("FAAS_FUNCTIONS_MODULE", "app.functions"),
                host=os.environ.get("HOST", "0.0.0.0"),
                port=int(os.environ.get("PORT", "8080")),
            )
        )
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
