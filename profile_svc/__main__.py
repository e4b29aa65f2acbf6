"""`python -m profile_svc` runs the ProfileService until SIGTERM."""

from profile_svc.server import main

if __name__ == "__main__":
    main()
