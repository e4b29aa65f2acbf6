"""ProfileService: the owner of user_profiles, answering what the system knows about a user."""
