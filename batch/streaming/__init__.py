"""The speed layer: Spark Structured Streaming from Kafka into interactions, profiles and feedback.

Run as `python -m batch.streaming`. See job.py for the shape of one micro-batch.
"""
