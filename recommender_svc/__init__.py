"""RecommenderService: the serving cascade (cache, realtime, batch, popular), similar movies, catalogue."""
