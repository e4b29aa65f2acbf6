"""`python -m event_svc` runs the Event service until SIGTERM."""

from event_svc.server import main
from recsys.grpcserver import run

if __name__ == "__main__":
    run(main())
