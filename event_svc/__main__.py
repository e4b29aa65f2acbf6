"""`python -m event_svc` runs the Event service until SIGTERM."""

import asyncio

from event_svc.server import main

if __name__ == "__main__":
    asyncio.run(main())
