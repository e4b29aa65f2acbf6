"""`python -m recommender_svc` runs the RecommenderService until SIGTERM."""

from recommender_svc.server import main

if __name__ == "__main__":
    main()
