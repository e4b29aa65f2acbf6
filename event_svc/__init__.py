"""Event service: validates user events and makes them durable in Kafka before answering."""
