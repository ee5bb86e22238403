"""The archive: every lifecycle step and each incident's current state in a SQL database (PostgreSQL in
production, SQLite in the dev stack), kept for years after Temporal's retention and Kafka's have passed.

An adapter beside activities and events: it imports the domain and SQLAlchemy, never Kafka or Temporal
(the archiver process in gridflow.app feeds it from the events topic).
"""
